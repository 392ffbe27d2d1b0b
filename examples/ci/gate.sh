#!/usr/bin/env bash
# The promotion gate as one CI step, for any CI system (see examples/ci/README.md).
#
#   examples/ci/gate.sh                                   # train the demo candidate, gate it, report
#   PROMOTE=1 examples/ci/gate.sh                         # ... and promote it if the gate passed
#   CANDIDATE_ADAPTER=path/to/adapter examples/ci/gate.sh # gate an adapter trained elsewhere
#
# Writes $OUT/gate.md (post it on the pull request), $OUT/gate.json and $OUT/evals.xml (JUnit).
# Exit status: the gate's (0 pass, 1 fail, 2 usage or config error); with PYTEST_BLOCKS=1 a
# failing pytest session fails the step too (see "pytest and CI" in the README).
set -euo pipefail

cd "$(dirname "$0")/../.."
HARNESS=${HARNESS:-.venv/bin/harness}
PYTHON=${PYTHON:-.venv/bin/python}
RUN_CONFIG=${RUN_CONFIG:-examples/ticket_triage/run.yaml}
MODEL=${MODEL:-smollm2-135m-instruct}   # base model when gating a fetched adapter
SUITES=${SUITES:-suites/}
POLICY=${POLICY:-}                      # empty: the shipped default policy
CHANNEL=${CHANNEL:-production}
PROMOTE=${PROMOTE:-0}
PYTEST_BLOCKS=${PYTEST_BLOCKS:-0}
OUT=${OUT:-ci-out}
mkdir -p "$OUT"

gate_policy=() pytest_policy=()
if [[ -n "$POLICY" ]]; then
  gate_policy=(--policy "$POLICY")
  pytest_policy=(--harness-policy "$POLICY")
fi

run_id="" model=$MODEL
if [[ -n "${CANDIDATE_ADAPTER:-}" ]]; then
  # A candidate trained elsewhere: evaluate the base and the candidate on the same suites.
  # Both go through the completion cache, so an unchanged base costs nothing the second time.
  "$HARNESS" eval "$SUITES" --model "$MODEL" --out "$OUT/baseline"
  "$HARNESS" eval "$SUITES" --model "$MODEL" --adapter "$CANDIDATE_ADAPTER" --out "$OUT/candidate"
  baseline=$OUT/baseline candidate=$OUT/candidate adapter=$CANDIDATE_ADAPTER
else
  # Train: the wrapped run records baseline, candidate, adapter and its gate in the registry.
  # Its config's channel is cleared: this script, not the run, decides when to promote.
  ci_config="$(dirname "$RUN_CONFIG")/ci-run.yaml"   # beside the original: its paths are relative
  sed -E 's/^channel:.*/channel: null/' "$RUN_CONFIG" > "$ci_config"
  "$HARNESS" run "$ci_config"
  run_id=$("$HARNESS" runs --limit 1 --json | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
  baseline="" candidate="" adapter=""
  while IFS='=' read -r key value; do
    printf -v "$key" '%s' "$value"
  done < <("$HARNESS" show "$run_id" --json | "$PYTHON" examples/ci/run_paths.py)
  echo "run $run_id: model $model, baseline $baseline, candidate $candidate, adapter $adapter"
fi

# The gate: exit 0 pass, 1 fail, 2 usage/config error; the Markdown summary is for the PR.
gate_rc=0
"$HARNESS" gate --baseline "$baseline" --candidate "$candidate" "${gate_policy[@]}" \
  --summary-md "$OUT/gate.md" --json "$OUT/gate.json" || gate_rc=$?

# The same evals as tests, one JUnit report for CI: cases (served from the completion cache)
# and the gate's rules as items. --tb=no keeps the log short; the XML holds every failure.
pytest_rc=0
"$PYTHON" -m pytest "$SUITES" --harness-model "$model" --harness-adapter "$adapter" \
  --harness-baseline "$baseline" "${pytest_policy[@]}" --harness-out "$OUT/pytest-results" \
  --junitxml "$OUT/evals.xml" -p no:cacheprovider -q --tb=no || pytest_rc=$?

if [[ $gate_rc -ne 0 ]]; then
  echo "gate failed (exit $gate_rc): see $OUT/gate.md; not promoted" >&2
  exit "$gate_rc"
fi
if [[ $PYTEST_BLOCKS == 1 && $pytest_rc -ne 0 ]]; then
  echo "pytest failed (exit $pytest_rc): see $OUT/evals.xml; not promoted" >&2
  exit "$pytest_rc"
fi
if [[ $PROMOTE == 1 ]]; then
  if [[ -z "$run_id" ]]; then
    echo "not promoted: a fetched adapter has no registry run; promote the run that trained it" >&2
  else
    "$HARNESS" promote "$run_id" --channel "$CHANNEL"
  fi
fi
