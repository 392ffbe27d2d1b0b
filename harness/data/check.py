"""`check_data`: every data check on one training file, in one `DataReport`.

Malformed records are reported and left out of the other checks; everything else runs on the
well-formed ones. Which findings block a run is decided in `report.py`.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from harness.data import consistency, coverage, dates, privacy
from harness.data.dedup import components, exact_groups, near_duplicate_pairs, normalize, shingles
from harness.data.formats import Record, read_records, resolve_family
from harness.data.leakage import Reference, find_leaks, suite_references
from harness.data.report import DataReport, finding


def data_hash(path: str | Path) -> str:
    """sha256 of the file's bytes: the dataset's identity in the registry."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_suites(suites) -> list:
    """Suites given as loaded `Suite` objects, or paths (suite folders or folders of suites)."""
    loaded, paths = [], []
    for s in suites or ():
        (loaded if hasattr(s, "cases") else paths).append(s)
    if paths:
        from harness.evals.api import load_suites

        loaded += load_suites(paths)
    return loaded


def _format_findings(records, family: str, name: str, loc, max_field_chars: int) -> list[dict]:
    findings = []
    for r in records:
        if r.ok and r.family != family:
            r.problems.append(f"a {r.family} record ({r.kind}) in a {family} file: use one format per file "
                              f"(or pass --format {r.family} if that is the intent)")
        if r.problems:
            findings.append(finding("format", "error", "; ".join(r.problems), [loc(r)]))
    long = [r for r in records if r.long_fields]
    if long:
        findings.append(finding("format", "warning", f"{len(long)} records have fields over {max_field_chars:,} chars: "
                                "they will be truncated at the training sequence length",
                                [loc(r) for r in long], fields={loc(r): r.long_fields for r in long}))
    if not records:
        findings.append(finding("format", "error", f"{name}: no records: one JSON object per line"))
    return findings


def _duplicate_findings(good, family: str, loc, near_dup_threshold: float) -> tuple[list[dict], dict]:
    """Exact duplicates, one prompt answered differently (sft), and near duplicates."""
    findings = []
    full = [normalize("\n".join([r.system, r.prompt, *r.answers, r.rejected or ""])) for r in good]
    groups = exact_groups(full)
    for g in groups:
        findings.append(finding("exact_duplicates", "warning", f"{len(g)} identical records (after normalisation): keep one",
                                [loc(good[i]) for i in g]))
    conflicts = []
    if family == "sft":
        by_prompt: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(good):
            by_prompt[normalize(r.system + "\n" + r.prompt)].append(i)
        for g in sorted((g for g in by_prompt.values() if len({full[i] for i in g}) > 1), key=lambda g: g[0]):
            conflicts.append(g)
            findings.append(finding("conflicting_answers", "warning",
                                    f"{len(g)} records share a prompt but answer it differently: keep the right answer",
                                    [loc(good[i]) for i in g]))
    # near duplicates compare what varies: the user side (the system prompt is usually shared)
    near_text = [r.prompt if family == "sft" else "\n".join([r.prompt, r.answer, r.rejected or ""]) for r in good]
    pairs = near_duplicate_pairs([shingles(normalize(t)) for t in near_text], near_dup_threshold)
    exact_of = {i: k for k, g in enumerate(groups + conflicts) for i in g}
    near = []
    for g in components(len(good), [(i, j) for i, j, _ in pairs]):
        if len({exact_of.get(i, -1 - i) for i in g}) > 1:  # not already one exact/conflict group
            near.append(g)
            sims = [round(s, 3) for i, j, s in pairs if i in g]
            findings.append(finding("near_duplicates", "warning",
                                    f"{len(g)} near-duplicate records (word 3-gram Jaccard >= {near_dup_threshold}): "
                                    "keep one, or make them differ", [loc(good[i]) for i in g], similarity=sims[:20]))
    return findings, {"exact_duplicate_groups": len(groups), "conflicting_groups": len(conflicts),
                      "near_duplicate_groups": len(near)}


def _leak_findings(good, suite_objs, against, loc, leak_threshold: float, max_field_chars: int) -> tuple[list[dict], dict]:
    """Training prompts that overlap eval cases (or held-out files named in `against`)."""
    refs = suite_references(suite_objs)
    held_out = []
    for other in against:
        others = [r for r in read_records(other, max_field_chars) if r.ok]
        refs += [Reference(str(other), str(r.line), r.prompt) for r in others]
        held_out.append({"path": str(other), "records": len(others)})
    by_record: dict[int, list] = defaultdict(list)
    for leak in find_leaks([r.prompt for r in good], refs, leak_threshold):
        by_record[leak.record].append(leak)
    findings = []
    for i, leaks in sorted(by_record.items()):
        leaks.sort(key=lambda x: -x.score)
        refs_txt = ", ".join(f"{x.ref.source}:{x.ref.id}" for x in leaks[:3]) + (f" +{len(leaks) - 3} more" if len(leaks) > 3 else "")
        top = leaks[0]
        findings.append(finding(
            "leakage", "error", f"prompt overlaps eval data {refs_txt} ({top.how}, {top.score:.0%} of 3-grams shared): "
            "drop it from training, or the eval no longer measures generalisation",
            [loc(good[i])], matches=[{"source": x.ref.source, "id": x.ref.id, "score": round(x.score, 3), "how": x.how} for x in leaks],
        ))
    return findings, {"suites": [{"name": s.name, "cases": len(s.cases), "hash": s.hash} for s in suite_objs],
                      "held_out": held_out, "leaks": len(by_record),
                      "leaked_cases": len({(x.ref.source, x.ref.id) for ls in by_record.values() for x in ls})}


def check_data(
    path: str | Path,
    *,
    suites: Sequence = (),
    fmt: str | None = None,
    schema: str | Path | dict | None = None,
    horizon_years: int = 3,
    gated_suites: Sequence[str] = ("safety",),
    against: Sequence[str | Path] = (),
    near_dup_threshold: float = 0.7,
    leak_threshold: float = 0.5,
    max_field_chars: int = 8000,
    today=None,
    data_format=None,
) -> DataReport:
    """Check a training JSONL file: format, duplicates, leakage into `suites` (and `against`
    held-out files), PII and secrets, answer consistency, coverage and stale dates."""
    from harness.data.hub import fetch, is_hub_address

    address = path if is_hub_address(path) else None
    path = fetch(path) if address else Path(path)
    suites = [suites] if isinstance(suites, (str, Path)) else suites
    against = [against] if isinstance(against, (str, Path)) else against
    against = [fetch(a) if is_hub_address(a) else a for a in against]
    records = read_records(path, max_field_chars, data_format)
    family = resolve_family(records, fmt)
    suite_objs = _load_suites(suites)
    validator = consistency.load_schema(schema) if schema is not None else None
    name = address or str(path)  # a hub file is named by its address, locations included

    def loc(r: Record) -> str:
        return f"{name}:{r.line}"

    findings = _format_findings(records, family, name, loc, max_field_chars)
    good = [r for r in records if r.ok]
    summary: dict = {"records": len(records), "formats": dict(Counter(r.kind or "unknown" for r in records).most_common()),
                     "malformed": len(records) - len(good)}
    for f, s in (
        _duplicate_findings(good, family, loc, near_dup_threshold),
        _leak_findings(good, suite_objs, against, loc, leak_threshold, max_field_chars),
        privacy.check_pii(good, loc),
        consistency.check_lengths(good, loc),
        consistency.check_schema(good, loc, validator, str(schema)) if validator else ([], {}),
        consistency.check_styles(good, loc),
        coverage.check_refusals(good, loc, [s.name for s in suite_objs if s.name in set(gated_suites)]),
        coverage.check_labels(good, loc, validator.schema if validator else None),
        dates.check_dates(good, loc, horizon_years, today),
    ):
        findings += f
        summary.update(s)
    if address:
        from harness.data.hub import commit_of

        summary["hub"] = {"address": address, "commit": commit_of(path), "file": str(path)}
    settings = {"format": family, "data_format": data_format, "schema": str(schema) if schema is not None and not isinstance(schema, dict) else schema,
                "horizon_years": horizon_years, "gated_suites": list(gated_suites), "near_dup_threshold": near_dup_threshold,
                "leak_threshold": leak_threshold, "max_field_chars": max_field_chars}
    return DataReport(name, data_hash(path), family, findings, summary, settings)
