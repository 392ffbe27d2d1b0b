"""Data commands: `harness data check`, `harness data split`."""

from __future__ import annotations

import argparse
import sys

from harness.commands import command


@command("data check", "Check training data: format, duplicates, leakage into eval suites, PII, consistency, coverage, stale dates.")
def cmd_data_check(p: argparse.ArgumentParser):
    p.add_argument("data", help="training file (JSONL, Parquet, CSV/TSV or JSON: chat messages, prompt/completion, or "
                   "prompt/chosen/rejected; other shapes with --data-format), or a hub dataset's file: "
                   "hf://datasets/org/name@revision/train.parquet")
    p.add_argument("--suites", nargs="+", default=[], help="eval suite folders, or a folder of suites (e.g. suites/), to check for leakage")
    p.add_argument("--against", nargs="+", default=[], help="held-out files (e.g. validation.jsonl, or hf://datasets/... files) to check for leakage too")
    p.add_argument("--format", choices=["sft", "dpo"], help="expected format family (default: detected from the records)")
    p.add_argument("--data-format", metavar="SHAPE", help="sharegpt, alpaca, or column renames as JSON, e.g. "
                   "'{\"prompt\": \"question\", \"completion\": \"answer\"}' (a run config's train.data_format)")
    p.add_argument("--schema", help="JSON Schema file that JSON answers must satisfy (e.g. suites/ticket_triage/schema.json)")
    p.add_argument("--horizon-years", type=int, default=3, help="dates older than this many years count as stale (default: 3)")
    p.add_argument("--gated", nargs="+", default=["safety"], help="suite names whose gate needs refusal examples (default: safety)")
    p.add_argument("--json", metavar="OUT", help="also write the full report as JSON to this file")

    def run(a):
        from harness.data import check_data
        from harness.data.tables import parse_data_format

        report = check_data(a.data, suites=a.suites, fmt=a.format, schema=a.schema, horizon_years=a.horizon_years,
                            gated_suites=a.gated, against=a.against, data_format=parse_data_format(a.data_format))
        report.render()
        if a.json:
            print(f"report: {report.write_json(a.json)}", file=sys.stderr)
        return 0 if report.ok else 1

    return run


@command("data split", "Split training data into train/validation/test by content hash, keeping near duplicates together.")
def cmd_data_split(p: argparse.ArgumentParser):
    p.add_argument("data", help="training file (JSONL)")
    p.add_argument("--ratios", default="0.8,0.1,0.1", help="two or three shares summing to 1: train,validation[,test] (default: 0.8,0.1,0.1)")
    p.add_argument("--out", help="folder for train.jsonl, validation.jsonl, test.jsonl and split.json (default: print counts only)")

    def run(a):
        from harness.data import split_data

        res = split_data(a.data, a.ratios, a.out)
        total = sum(res["counts"].values())
        for name, n in res["counts"].items():
            where = f"  -> {res['files'][name]}" if res["files"] else ""
            print(f"{name:<10} {n:>6}  {n / total:6.1%}{where}")
        print(f"{res['near_duplicate_groups']} near-duplicate groups kept together; sha256 {res['data_hash'][:12]}")
        if res["near_duplicates_across_splits"]:
            print(f"warning: {res['near_duplicates_across_splits']} near-duplicate pairs fall in different splits "
                  "(a record resembles two earlier records that were split apart)", file=sys.stderr)
        if not res["files"]:
            print("(nothing written: pass --out DIR to write the split files)", file=sys.stderr)

    return run
