"""Deterministic, hash-based train/validation/test splits that keep near duplicates together.

Each record's split comes from the sha256 of its normalised content, so identical records
always land together and no seed or order is involved. A record that is a near duplicate of
an earlier record in the file follows the earliest such record instead. A record's split thus
depends only on itself and the records before it: appending data never moves an old record.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from harness.data.dedup import components, near_duplicate_pairs, normalize, shingles
from harness.data.formats import read_records
from harness.errors import HarnessError

NAMES = {2: ("train", "validation"), 3: ("train", "validation", "test")}


def parse_ratios(ratios: str | Sequence[float]) -> tuple[float, ...]:
    """'0.8,0.1,0.1' or a sequence: two or three positive shares summing to 1."""
    if isinstance(ratios, str):
        try:
            ratios = [float(x) for x in ratios.split(",") if x.strip()]
        except ValueError:
            raise HarnessError(f"--ratios {ratios!r}: give comma-separated numbers, e.g. 0.8,0.1,0.1") from None
    ratios = tuple(float(x) for x in ratios)
    if len(ratios) not in NAMES or any(x <= 0 for x in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise HarnessError(f"ratios {ratios}: give two or three positive shares summing to 1 (train, validation[, test]), e.g. 0.8,0.1,0.1")
    return ratios


def bucket(content: str, salt: str = "") -> float:
    """A uniform number in [0, 1) from the content alone."""
    return int(hashlib.sha256(f"{salt}\0{content}".encode()).hexdigest()[:16], 16) / 2**64


def split_data(path: str | Path, ratios: str | Sequence[float] = (0.8, 0.1, 0.1), out_dir: str | Path | None = None,
               *, near_dup_threshold: float = 0.7, salt: str = "") -> dict:
    """Assign every record of a JSONL file to a split; with `out_dir`, write one JSONL per split
    (the original lines, in file order) and `split.json`.

    Returns {source, data_hash, ratios, counts, lines: {split: [line numbers]}, files,
    near_duplicate_groups, near_duplicates_across_splits}.
    """
    from harness.data.check import data_hash

    shares = parse_ratios(ratios)
    names = NAMES[len(shares)]
    records = read_records(path)
    bad = [r for r in records if not r.ok]
    if bad:
        where = ", ".join(f"{path}:{r.line}" for r in bad[:5]) + (f" +{len(bad) - 5} more" if len(bad) > 5 else "")
        raise HarnessError(f"{len(bad)} malformed records ({where}): fix them first (`harness data check {path}` lists why)")
    if not records:
        raise HarnessError(f"{path}: no records to split")

    edges = [(i, j) for i, j, _ in near_duplicate_pairs([shingles(normalize(r.prompt)) for r in records], near_dup_threshold)]
    earlier: dict[int, int] = {}
    for i, j in edges:  # i < j: j follows its earliest near-duplicate predecessor
        earlier[j] = min(earlier.get(j, i), i)
    cuts = [sum(shares[: k + 1]) for k in range(len(shares))]
    assign: list[int] = []
    for n, r in enumerate(records):
        if n in earlier:
            assign.append(assign[earlier[n]])
            continue
        u = bucket(normalize("\n".join([r.system, r.prompt, *r.answers, r.rejected or ""])), salt)
        assign.append(next((k for k, c in enumerate(cuts) if u < c), len(cuts) - 1))

    lines: dict[str, list[int]] = {name: [] for name in names}
    for r, k in zip(records, assign):
        lines[names[k]].append(r.line)
    across = sum(assign[i] != assign[j] for i, j in edges)
    result = {
        "source": str(path),
        "data_hash": data_hash(path),
        "ratios": dict(zip(names, shares)),
        "counts": {k: len(v) for k, v in lines.items()},
        "lines": lines,
        "files": {},
        "near_duplicate_groups": len(components(len(records), edges)),
        "near_duplicates_across_splits": across,
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        by_split: dict[int, list[str]] = defaultdict(list)
        for r, k in zip(records, assign):
            by_split[k].append(r.text)
        for k, name in enumerate(names):
            p = out / f"{name}.jsonl"
            p.write_text("".join(t + "\n" for t in by_split[k]), encoding="utf-8")
            result["files"][name] = str(p)
        (out / "split.json").write_text(json.dumps({k: v for k, v in result.items() if k != "lines"}, indent=2) + "\n")
    return result
