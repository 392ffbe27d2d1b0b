"""Stale facts: ISO dates and year-like numbers older than a horizon, counted per record.

A year is a standalone 19xx/20xx number not part of a larger number, amount or version. Years
after today are ignored (deadlines, plans), and so are years more than `history_years` back:
"the crisis of October 1962" is history, not a fact that goes stale, while "as of 2019" in an
answer probably is. The count is a prompt to review time-sensitive answers: it warns, never blocks.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence

from harness.data.formats import Record
from harness.data.report import finding

ISO_DATE = re.compile(r"(?<![\d.])((?:19|20)\d{2})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?![\d])")
YEAR = re.compile(r"(?<![\w$€£.,/:-])((?:19|20)\d{2})(?![\w%]|[.,:/-]\d)")


def dates_in(text: str, today: dt.date) -> list[dt.date]:
    """Every ISO date and standalone year in `text` (a year as its 1 January), future ones dropped."""
    out = []
    for m in ISO_DATE.finditer(text):
        try:
            out.append(dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))))
        except ValueError:
            continue
    rest = ISO_DATE.sub(" ", text)
    out += [dt.date(int(m.group(1)), 1, 1) for m in YEAR.finditer(rest)]
    return [d for d in out if d <= today]


def check_dates(records: Sequence[Record], loc: Callable[[Record], str], horizon_years: int = 3,
                today: dt.date | None = None, history_years: int = 25) -> tuple[list[dict], dict]:
    today = today or dt.date.today()
    history = dt.date(today.year - history_years, 1, 1)
    # a year mention counts as 1 January, so the cutoff is a year boundary: with 3 years on
    # 2026-11-29, anything in 2022 or earlier is stale and 2023 is not
    cutoff = dt.date(today.year - int(horizon_years), 1, 1)
    stale_records, mentions = [], 0
    for r in records:
        old = [d for t in r.texts() for d in dates_in(t, today) if history <= d < cutoff]
        if old:
            stale_records.append(r)
            mentions += len(old)
    summary = {"stale_dates": {"mentions": mentions, "records": len(stale_records), "before": cutoff.isoformat(),
                               "since": history.isoformat(), "horizon_years": horizon_years}}
    if not stale_records:
        return [], summary
    return [finding(
        "stale_dates", "warning",
        f"{mentions} dates or years from {history.year} to {cutoff.year - 1} in {len(stale_records)} records ({horizon_years}-year horizon): "
        "check that those answers are still true",
        [loc(r) for r in stale_records],
    )], summary
