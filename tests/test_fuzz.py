"""Fuzzing every file format a user writes: suite YAML, cases JSONL, gate policies, run configs,
training configs and training JSONL.

Each example starts from a valid file, breaks it (a value replaced by something hostile, a key
added or dropped, bytes inserted, the file cut short) and hands it to the loader and to the CLI
command that reads it, in this process. The loader either accepts the file or raises a
`HarnessError`; anything else is a bug. A rejected file must make the command exit 2 with one
`error:` line first, naming the file, and no traceback. 6 formats x 100 examples run in
`make test` (HARNESS_FUZZ_EXAMPLES=N runs N per format).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "tests/fixtures/suites/mini"
TINY_CHAT = REPO / "tests/fixtures/train/tiny_chat.jsonl"
# HARNESS_FUZZ_EXAMPLES=2000 make test fuzzes longer
EXAMPLES = settings(max_examples=int(os.environ.get("HARNESS_FUZZ_EXAMPLES", "100")), suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ---- hostile values --------------------------------------------------------------------------
HOSTILE_BYTES = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", "\u2028".encode(), "\u0085".encode(), b"[" * 300,
                 b"{" * 300, b"9" * 5000, b"true", b".inf", b".nan", b"NaN", b"-1", b"1e999", b"null", b"{}", b"[]",
                 b"&a [*a, *a]", b"*undefined", b"!!python/object/apply:os.system ['true']", b"\t", b"'", b'"',
                 b"- ", b": ", b"\n", b"\r", b"---\n", b"%YAML 9.9\n", b"? ", b"@", b"`", b"\\u0000"]


def _deep(n: int, leaf) -> object:
    v = leaf
    for _ in range(n):
        v = [v]
    return v


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", " ", "\u2028", "\ufeff", "../../etc/passwd", "$HOME", "{{ 1/0 }}", "{% raw %}", "{{ input.nope }}",
                     "-1", "1e-4", "0", "true", "default", "*", "a/b", "x" * 5000]),
)
values = st.one_of(
    scalars,
    st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                 max_leaves=12),
    st.integers(min_value=65, max_value=400).map(lambda n: _deep(n, 1)),
)


def _paths(obj, prefix=()):
    """Every key path into a nested YAML/JSON value (lists by index)."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value, op):
    if not path:
        return value
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    k = path[-1]
    if op == "delete":
        del parent[k]
    elif op == "add_key" and isinstance(parent, dict):
        parent[f"{k}_typo"] = value
    else:
        parent[k] = value
    return obj


@st.composite
def structured(draw, seed: object):
    """`seed` with one value replaced, deleted, or a misspelt key added beside it."""
    obj = json.loads(json.dumps(seed))
    path = draw(st.sampled_from(list(_paths(obj))))
    op = draw(st.sampled_from(["replace", "replace", "delete", "add_key"])) if path else "replace"
    return _set(obj, path, draw(values), op)


def _dump_yaml(obj) -> bytes:
    try:
        return yaml.safe_dump(obj, allow_unicode=True, sort_keys=False).encode()
    except (yaml.YAMLError, RecursionError):
        return json.dumps(obj, default=str).encode()


def _dump_json(obj) -> bytes:
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=True).encode()
    except (ValueError, RecursionError):
        return b'{"broken": '


@st.composite
def corrupted(draw, text: bytes):
    """`text` with bytes inserted, a span deleted, or the file cut short."""
    op = draw(st.sampled_from(["insert", "insert", "delete", "truncate", "replace_all"]))
    i = draw(st.integers(0, len(text)))
    if op == "insert":
        junk = draw(st.sampled_from(HOSTILE_BYTES) | st.binary(min_size=1, max_size=8))
        return text[:i] + junk + text[i:]
    if op == "delete":
        return text[:i] + text[i + draw(st.integers(1, 40)):]
    if op == "truncate":
        return text[:i]
    return draw(st.binary(max_size=200) | st.sampled_from(HOSTILE_BYTES))


def broken_yaml(seed_obj):
    return st.one_of(structured(seed_obj).map(_dump_yaml), st.builds(lambda: _dump_yaml(seed_obj)).flatmap(corrupted))


def broken_jsonl(lines: list[dict]):
    """A JSONL file with one line broken structurally or byte-wise."""
    good = [_dump_json(x) for x in lines]

    @st.composite
    def build(draw):
        i = draw(st.integers(0, len(lines) - 1))
        bad = draw(st.one_of(structured(lines[i]).map(_dump_json), corrupted(good[i])))
        return b"\n".join(good[:i] + [bad] + good[i + 1:]) + b"\n"

    return build()


# ---- running one example ---------------------------------------------------------------------
def _cli(argv: list[str]) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(argv)
    return rc, err.getvalue()


def _assert_rejected_cleanly(argv: list[str], named: Path, loader_error: HarnessError) -> None:
    rc, err = _cli(argv)
    assert rc == 2, (rc, err)
    first = err.splitlines()[0] if err else ""
    assert first.startswith("error: "), err
    assert str(named) in err, f"the message does not name {named}: {err}"
    assert "Traceback" not in err
    assert str(loader_error).splitlines()[0] in err


def _check(load, argv: list[str], named: Path) -> None:
    """The loader accepts the file or raises HarnessError; a rejected file fails the CLI cleanly."""
    try:
        load()
    except HarnessError as e:
        _assert_rejected_cleanly(argv, named, e)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _fresh(work: Path, name: str) -> Path:
    d = work / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    return d


# ---- the formats -------------------------------------------------------------------------------
SUITE_SEED = yaml.safe_load((MINI / "suite.yaml").read_text())
CASES_SEED = [json.loads(line) for line in (MINI / "cases.jsonl").read_text().splitlines()]
MC_CASE = next(c for c in CASES_SEED if c["slices"]["kind"] == "mc")
POLICY_SEED = {"name": "fuzz", "confidence": 0.95, "on_insufficient": "fail", "required": ["mini"],
               "rules": [{"metric": "mini/json_valid", "min": 0.5}, {"metric": "mini/contains", "max_drop": 0.1, "slices": ["kind"]},
                         {"metric": "*/pass_rate", "max_drop": 0.05, "min_n": 5}]}
TRAIN_SEED = {"method": "lora", "train_data": str(TINY_CHAT), "max_steps": 2, "learning_rate": 1e-3,
              "lora": {"r": 4, "alpha": 8}, "save_steps": 1}
TRAIN_JSONL_SEED = [json.loads(line) for line in TINY_CHAT.read_text().splitlines()[:3]] + [
    {"prompt": "Say hi", "completion": "hi"}, {"prompt": "Q", "chosen": "good", "rejected": "bad"}]


RUN_SEED = {"name": "fuzz", "suites": [str(MINI)], "policy": "policy.yaml", "channel": "staging", "train": dict(TRAIN_SEED),
            "eval": {"max_cases": 4, "latency_sample": 1}, "checkpoint_selection": {"enabled": False}}


@given(data=broken_yaml(SUITE_SEED))
@example(data=b"name: mini\xff\n")
@example(data=b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n")
@example(data=b"version: " + b"9" * 5000 + b"\n")
@example(data=b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
              b"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n")
@example(data=_dump_yaml({**SUITE_SEED, "latency_sample": True}))
@example(data=_dump_yaml({**SUITE_SEED, "slices": [[], "difficulty"]}))  # found by CI: a list where a slice name goes
@example(data=_dump_yaml({**SUITE_SEED, "slices": [{"a": 1}, 3, None]}))
@example(data=_dump_yaml({**SUITE_SEED, "slices": "difficulty"}))
@EXAMPLES
def test_fuzz_suite_yaml(work, data):
    from harness.evals.suite import load_suite

    d = _fresh(work, "suite")
    (d / "suite.yaml").write_bytes(data)
    shutil.copy(MINI / "cases.jsonl", d / "cases.jsonl")
    _check(lambda: load_suite(d), ["suites", "validate", str(d)], d)


@given(data=broken_jsonl(CASES_SEED))
@example(data=b'{"id": "x", "input": ' + b"[" * 5000 + b"]" * 5000 + b"}\n")
@example(data=b'{"id": "x", "input": {"a": ' + b"9" * 5000 + b"}}\n")
@example(data=b'{"id": "x\xff", "input": "a"}\n')
@example(data=_dump_json({**MC_CASE, "input": {**MC_CASE["input"], "choices": {"a": "yes", "b": "no"}}}) + b"\n")
@example(data=_dump_json({**MC_CASE, "expected": {"answer": 9}}) + b"\n")
@EXAMPLES
def test_fuzz_cases_jsonl(work, data):
    from harness.evals.suite import load_suite

    d = _fresh(work, "cases")
    shutil.copy(MINI / "suite.yaml", d / "suite.yaml")
    (d / "cases.jsonl").write_bytes(data)
    _check(lambda: load_suite(d), ["suites", "validate", str(d)], d)


@given(data=broken_yaml(POLICY_SEED))
@example(data=b"name: p\nconfidence: " + b"9" * 5000 + b"\nrules: []\n")
@example(data=b"name: p\xfe\n")
@example(data=_dump_yaml({**POLICY_SEED, "confidence": True}))
@example(data=_dump_yaml({**POLICY_SEED, "rules": [{"metric": "mini/json_valid", "min": math.inf}]}))
@EXAMPLES
def test_fuzz_policy(work, data):
    from harness.gates import load_policy

    d = _fresh(work, "policy")
    p = d / "policy.yaml"
    p.write_bytes(data)
    # the gate validates its policy before it reads any results, so missing results folders are never reached
    _check(lambda: load_policy(p), ["gate", "--baseline", str(d / "none"), "--candidate", str(d / "none"), "--policy", str(p)], p)


@given(data=broken_yaml(TRAIN_SEED))
@example(data=_dump_yaml({**TRAIN_SEED, "learning_rate": True}))
@example(data=_dump_yaml({**TRAIN_SEED, "lora": {"r": True}}))
@example(data=_dump_yaml({**TRAIN_SEED, "num_epochs": math.inf}))
@example(data=b"method: lora\ntrain_data: \xff\n")
@EXAMPLES
def test_fuzz_train_config(work, data):
    from harness.train import load_train_config

    d = _fresh(work, "train")
    p = d / "train.yaml"
    p.write_bytes(data)
    # a config the loader accepts would train: only rejected ones go on to the CLI
    _check(lambda: load_train_config(p), ["train", str(p)], p)


@given(data=broken_yaml(RUN_SEED))
@example(data=_dump_yaml({**RUN_SEED, "train": {**TRAIN_SEED, "lora": {"r": True}}}))
@example(data=_dump_yaml({**RUN_SEED, "eval": {"max_cases": True}}))
@EXAMPLES
def test_fuzz_run_config(work, data):
    from harness.runconfig import load_run_config

    d = _fresh(work, "run")
    p = d / "run.yaml"
    p.write_bytes(data)
    (d / "policy.yaml").write_text(yaml.safe_dump(POLICY_SEED))
    _check(lambda: load_run_config(p), ["run", str(p), "--registry", str(d / "registry.db")], p)


@given(data=broken_jsonl(TRAIN_JSONL_SEED))
@example(data=b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}\n")
@example(data=b'{"prompt": "a", "completion": ' + b"9" * 5000 + b"}\n")
@example(data=b'{"prompt": "a\xff", "completion": "b"}\n')
@EXAMPLES
def test_fuzz_train_jsonl(work, data):
    """`data check` reports broken records as findings (exit 1) with their line; `train` on the
    same file refuses it before any model loads (exit 2), naming the file and line."""
    from harness.data.formats import read_records

    d = _fresh(work, "data")
    p = d / "train.jsonl"
    p.write_bytes(data)
    records = read_records(p)
    broken = [r.line for r in records if r.problems]
    rc, err = _cli(["data", "check", str(p), "--json", str(d / "report.json")])
    assert rc in (0, 1) and "Traceback" not in err, err
    report = json.loads((d / "report.json").read_text())
    if broken:
        assert rc == 1
        where = {loc for f in report["findings"] if f["check"] == "format" for loc in f["locations"]}
        assert f"{p}:{broken[0]}" in where, where
        cfg = d / "train.yaml"
        cfg.write_text(yaml.safe_dump({**TRAIN_SEED, "train_data": str(p)}))
        from harness.train import load_train_config

        with pytest.raises(HarnessError) as e:
            load_train_config(cfg)
        assert f"{p}:{broken[0]}" in str(e.value)
        _assert_rejected_cleanly(["train", str(cfg)], p, e.value)
