"""Prompt-only and retrieval arms: deterministic shots, no leaked examples, shared cache, gate rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.arms import Retriever, fixed_shots, shots_fn, usable_examples
from harness.evals import load_suite

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests/fixtures/suites/mini"


def write_train(path: Path, leaked_case_text: str) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"Tell me about the colour of item {i} in the catalogue."},
                          {"role": "assistant", "content": json.dumps({"item": i})}]} for i in range(12)]
    # line 13 copies a suite case almost verbatim: it must never be used as a shot
    rows.append({"messages": [{"role": "user", "content": leaked_case_text},
                              {"role": "assistant", "content": "{\"leaked\": true}"}]})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def suite():
    return load_suite(MINI)


@pytest.fixture
def train(tmp_path, suite):
    return write_train(tmp_path / "train.jsonl", suite.cases[3].input["text"])


def test_leaked_examples_are_excluded(train, suite):
    examples, leaked = usable_examples(train, [suite])
    assert leaked == [13]
    assert all(e.line != 13 for e in examples) and len(examples) == 12
    for seed in range(20):
        assert all(e.line != 13 for e in fixed_shots(examples, 12, seed))


def test_shot_selection_is_deterministic(train, suite):
    examples, _ = usable_examples(train, [suite])
    a = [e.line for e in fixed_shots(examples, 4, seed=3)]
    assert a == [e.line for e in fixed_shots(examples, 4, seed=3)]
    assert a != [e.line for e in fixed_shots(examples, 4, seed=4)]
    fn, info = shots_fn("prompted", train, [suite], 4, seed=3)
    assert info["shots"] == a and info["excluded_leaks"] == [13]
    assert fn(suite.cases[0]) == fn(suite.cases[5])  # the same shots for every case
    assert len(fn(suite.cases[0])) == 8 and fn(suite.cases[0])[0]["role"] == "user"


def test_retrieval_picks_nearest_and_is_deterministic(train, suite):
    examples, _ = usable_examples(train, [suite])
    r = Retriever(examples)
    near = r.nearest("colour of item 7 in the catalogue", 2)
    assert near[-1].user.startswith("Tell me about the colour of item 7")
    assert [e.line for e in near] == [e.line for e in Retriever(examples).nearest("colour of item 7 in the catalogue", 2)]
    fn, _ = shots_fn("retrieval", train, [suite], 3)
    msgs = suite.messages(suite.cases[0], fn(suite.cases[0]))
    assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "user" and len(msgs) == 1 + 6 + 1


def test_arms_share_the_cache_and_cost_more_prompt_tokens(tiny_backend, train, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    from harness.arms import run_arm
    from harness.evals import run_eval

    base, _ = run_eval([MINI], "tiny", out=tmp_path / "base", backend=tiny_backend, latency_n=0)
    first, _, _ = run_arm("prompted", [MINI], "tiny", train, k=2, backend=tiny_backend, out=tmp_path / "p1", latency_n=0)
    again, _, _ = run_arm("prompted", [MINI], "tiny", train, k=2, backend=tiny_backend, out=tmp_path / "p2", latency_n=0)
    zero, _, _ = run_arm("prompted", [MINI], "tiny", train, k=0, backend=tiny_backend, out=tmp_path / "p0", latency_n=0)
    assert first["mini"].summary["timing"]["generated"] == 12
    assert again["mini"].summary["timing"]["from_cache"] == 12  # same prompts: served from the cache
    assert zero["mini"].summary["timing"]["from_cache"] == 12  # zero shots is the base prompt: the base's cache entries
    assert first["mini"].arm == "prompted"
    assert first["mini"].metrics["mini/prompt_tokens"]["value"] > base["mini"].metrics["mini/prompt_tokens"]["value"]


def test_beats_arm_rule_decides_both_ways():
    from harness.gates import Policy, compare, decide
    from tests.gates.synth import make_result

    n = 300
    arm = make_result("s", {"ok": [1] * 150 + [0] * 150})
    better = make_result("s", {"ok": [1] * 250 + [0] * 50})
    worse = make_result("s", {"ok": [1] * 60 + [0] * 240})
    base = make_result("s", {"ok": [0] * n})
    pol = Policy.model_validate({"name": "arms", "rules": [{"metric": "s/ok", "beats_arm": "prompted", "max_drop": 0.02}]})
    d = decide(compare({"s": base}, {"s": better}), pol, {"prompted": compare({"s": arm}, {"s": better})})
    assert d.passed and d.rules[0].verdict == "pass"
    d = decide(compare({"s": base}, {"s": worse}), pol, {"prompted": compare({"s": arm}, {"s": worse})})
    assert not d.passed and "fine-tuning not justified over prompted" in d.rules[0].reason
    d = decide(compare({"s": base}, {"s": better}), pol, {})
    assert not d.passed and "was not evaluated" in d.rules[0].reason


def test_an_arms_prompts_and_shots_are_recorded_with_its_results(tiny_backend, train, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    from harness.arms import run_arm

    _, out, info = run_arm("prompted", [MINI], "tiny", train, k=2, seed=3, backend=tiny_backend, out=tmp_path / "p", latency_n=0)
    summary = json.loads((out / "mini/summary.json").read_text())
    rec = summary["arm_info"]
    assert rec["arm"] == "prompted" and rec["k"] == 2 and rec["seed"] == 3 and rec["shots"] == info["shots"] and len(rec["shots"]) == 2
    assert rec["excluded_leaks"] == [13] and rec["train_sha256"] and rec["train_data"] == str(train)
    outs = [json.loads(line) for line in (out / "mini/outputs.jsonl").read_text().splitlines()]
    shot_lines = train.read_text().splitlines()
    for o in outs:
        msgs = o["messages"]
        # the exact chat: the suite's system prompt, the two shots from the recorded lines, then the case
        shots = [json.loads(shot_lines[n - 1])["messages"] for n in rec["shots"]]
        assert msgs[1:5] == [t for s in shots for t in s] and msgs[-1]["role"] == "user"
