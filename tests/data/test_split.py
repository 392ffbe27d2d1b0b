"""Deterministic splits: same input, same split; appending data never moves old records;
near-duplicate groups stay in one split."""

from __future__ import annotations

import json
import random

import pytest

from harness.data import split_data
from harness.errors import HarnessError
from tests.data.helpers import SYSTEM, chat, clean_records, write_jsonl


def assignment(result: dict) -> dict[int, str]:
    return {line: name for name, lines in result["lines"].items() for line in lines}


def near_copy(rec: dict, k: int) -> dict:
    words = rec["messages"][1]["content"].split()
    words[-1] = f"variant{k}"
    return chat(" ".join(words), rec["messages"][2]["content"], system=SYSTEM)


def test_deterministic_and_ratios_respected(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", clean_records(2000, seed=1))
    a, b = split_data(path), split_data(path, "0.8,0.1,0.1")
    assert a["lines"] == b["lines"] and set(a["lines"]) == {"train", "validation", "test"}
    n = a["counts"]
    assert sum(n.values()) == 2000
    assert abs(n["train"] / 2000 - 0.8) < 0.03 and abs(n["validation"] / 2000 - 0.1) < 0.02 and abs(n["test"] / 2000 - 0.1) < 0.02
    assert split_data(path, (0.9, 0.1))["counts"].keys() == {"train", "validation"}
    # the split follows content, not position: the same records shuffled land in the same splits
    recs = clean_records(2000, seed=1)
    order = list(range(2000))
    random.Random(3).shuffle(order)
    shuffled = split_data(write_jsonl(tmp_path / "s.jsonl", [recs[i] for i in order]))
    sa = assignment(shuffled)
    assert all(sa[pos + 1] == assignment(a)[i + 1] for pos, i in enumerate(order))


def test_growth_never_moves_old_records(tmp_path):
    old = clean_records(300, seed=2)
    before = assignment(split_data(write_jsonl(tmp_path / "v1.jsonl", old)))
    rng = random.Random(4)
    new = clean_records(300, seed=9) + [near_copy(old[rng.randrange(300)], k) for k in range(40)]
    rng.shuffle(new)
    after = assignment(split_data(write_jsonl(tmp_path / "v2.jsonl", old + new)))
    assert all(after[line] == split for line, split in before.items())
    # the near copies of old records joined their originals' splits
    grown = split_data(tmp_path / "v2.jsonl")
    assert grown["near_duplicate_groups"] >= 30 and grown["near_duplicates_across_splits"] == 0


def test_near_duplicate_groups_stay_together(tmp_path):
    recs = clean_records(200, seed=5)
    groups = []
    for g in range(20):
        base = recs[g * 7]
        groups.append([g * 7 + 1] + [len(recs) + k + 1 for k in range(4)])
        recs += [near_copy(base, f"{g}x{k}") for k in range(4)]
    result = split_data(write_jsonl(tmp_path / "d.jsonl", recs))
    where = assignment(result)
    for group in groups:
        assert len({where[line] for line in group}) == 1, group
    assert result["near_duplicate_groups"] == 20 and result["near_duplicates_across_splits"] == 0


def test_out_dir_writes_original_lines(tmp_path):
    recs = clean_records(50)
    path = write_jsonl(tmp_path / "d.jsonl", recs)
    result = split_data(path, (0.5, 0.5), tmp_path / "splits")
    lines = path.read_text().splitlines()
    for name, file in result["files"].items():
        got = (tmp_path / "splits" / f"{name}.jsonl").read_text().splitlines()
        assert got == [lines[n - 1] for n in result["lines"][name]] and str(file).endswith(f"{name}.jsonl")
    manifest = json.loads((tmp_path / "splits/split.json").read_text())
    assert manifest["counts"] == result["counts"] and manifest["data_hash"] == result["data_hash"]


@pytest.mark.parametrize("ratios", ["0.8,0.3", "1", "0.5,0.5,0,0", "a,b", (0.7, -0.1, 0.4)])
def test_bad_ratios(tmp_path, ratios):
    path = write_jsonl(tmp_path / "d.jsonl", clean_records(5))
    with pytest.raises(HarnessError, match="ratios"):
        split_data(path, ratios)


def test_malformed_records_refuse_to_split(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [*clean_records(3), "{oops"])
    with pytest.raises(HarnessError, match=r"d.jsonl:4.*harness data check"):
        split_data(path)
