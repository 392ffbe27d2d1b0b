"""Training data: reading and validating records, quality checks (duplicates, leakage into eval
suites, PII, consistency, coverage, stale dates) and deterministic splits."""

from harness.data.check import check_data, data_hash
from harness.data.formats import Record, read_records
from harness.data.leakage import case_text, find_leaks
from harness.data.report import BLOCKING_CHECKS, DataReport, finding, summary_rows
from harness.data.split import parse_ratios, split_data

__all__ = [
    "BLOCKING_CHECKS",
    "DataReport",
    "Record",
    "case_text",
    "check_data",
    "data_hash",
    "find_leaks",
    "finding",
    "parse_ratios",
    "read_records",
    "split_data",
    "summary_rows",
]
