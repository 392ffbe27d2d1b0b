#!/usr/bin/env bash
# `make demo-regression`, after `make demo`: a candidate the gate must stop, then what is served.
#
# 1. The same LoRA recipe trained on the triage examples only (train-triage-only.jsonl: the
#    demo data without its 170 chat examples, the mistake of forgetting the safety data). It reuses
#    the demo's cached baseline. Its triage numbers look fine; the gate blocks it on safety.
# 2. production still serves the demo's adapter. To show the way back, the blocked adapter is
#    then forced live (recorded as forced, with its reason) and `harness rollback` restores the
#    demo's adapter in one step; `harness history` shows all three moves.
# 3. The two runs side by side: verdict, blocking rules, what each serves, what each cost.
set -euo pipefail
here=$(dirname "$0")
H=${HARNESS:-harness}

$H run "$here/run-regression.yaml"   # exits 0 with "gate FAILED, not promoted": the run itself worked
echo
echo "== production, after the blocked run"
$H status
blocked=$($H runs --json --limit 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
echo
echo "== forcing the blocked adapter live, then rolling back"
$H promote "$blocked" --force --reason "demo: the blocked candidate forced live, to show rollback"
$H rollback production --reason "demo: back to the adapter that passed its gate"
echo
$H history production
echo
echo "== side by side: run, verdict, blocking rules, what is served, cost"
$H runs --limit 2
