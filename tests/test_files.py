"""The one reader of user files (`harness.files`) and strict config types (`harness.configmodel`)."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.files import MAX_DEPTH, iter_jsonl, load_json, load_mapping, load_yaml, parse_json


def _yaml(tmp_path, data: bytes):
    p = tmp_path / "c.yaml"
    p.write_bytes(data)
    return p


def test_yaml_errors_name_file_and_line(tmp_path):
    cases = {
        b"a: 1\nb: ok\xff\n": r"c.yaml:2: not UTF-8 \(byte 0xff at column 6\)",
        b"a: 1\nb: " + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"\n": r"c.yaml:2: nested more than 64 levels",
        b"a: 1\n\nb: " + b"7" * 4301 + b"\n": r"c.yaml:3: an integer of 4,301 digits",
        b"a: [1, 2\nb: 3\n": r"c.yaml:\d+: not valid YAML",
        b"a: &x [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &y [*x, *x, *x, *x, *x, *x, *x, *x, *x, *x]\nc: &z [*y, *y, *y, *y, *y, *y, *y, *y, *y, *y]\n"
        b"d: &w [*z, *z, *z, *z, *z, *z, *z, *z, *z, *z]\ne: &v [*w, *w, *w, *w, *w, *w, *w, *w, *w, *w]\nf: [*v, *v, *v]\n":
            r"c.yaml:6: expands to more than 200,000 values",
    }
    for data, pattern in cases.items():
        with pytest.raises(ConfigError, match=pattern):
            load_yaml(_yaml(tmp_path, data))


def test_yaml_within_limits_loads(tmp_path):
    deep = b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1)  # under the top-level mapping
    assert load_yaml(_yaml(tmp_path, b"a: " + deep + b"\nb: " + b"7" * 4300 + b"\nc: &x [1]\nd: *x\n"))["d"] == [1]
    assert load_yaml(_yaml(tmp_path, b"")) is None
    assert load_mapping(_yaml(tmp_path, b""), "a config") == {}
    with pytest.raises(ConfigError, match="a config is a mapping of fields \\(got a YAML list\\)"):
        load_mapping(_yaml(tmp_path, b"- 1\n"), "a config")
    with pytest.raises(ConfigError, match="a folder, not a file"):
        load_yaml(tmp_path)


def test_json_limits():
    assert parse_json('{"a": [1, 2]}') == ({"a": [1, 2]}, None)
    for text, fragment in [("[" * 5000 + "]" * 5000, "nested more than 64"), ("[" * 65 + "]" * 65, "nested more than 64"),
                           ("9" * 5000, "more than 4300 digits"), ('{"a": NaN}', "NaN is not JSON"),
                           ("[Infinity]", "Infinity is not JSON"), ('{"a": ', "not valid JSON (Expecting value at column 7)")]:
        value, problem = parse_json(text)
        assert value is None and fragment in problem, (text[:20], problem)
    assert parse_json("[" * 64 + "]" * 64)[1] is None


def test_jsonl_lines_split_on_newline_only(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes('{"a": "one\u2028two\u2029three\u0085four"}\n\n{"b": 1}\r\n'.encode() + b'{"c": \xff}\n{"d": \n')
    rows = list(iter_jsonl(p))
    assert [r[0] for r in rows] == [1, 3, 4, 5]
    assert rows[0][2] == {"a": "one\u2028two\u2029three\u0085four"} and rows[0][3] is None
    assert rows[1][2] == {"b": 1}
    assert rows[2][3].startswith("not UTF-8 (byte 0xff at column 7)")
    assert rows[3][3].startswith("not valid JSON")


def test_load_json_names_the_file(tmp_path):
    p = tmp_path / "schema.json"
    p.write_bytes(b'{"type": "object",\n "x": \xfe}')
    with pytest.raises(ConfigError, match=r"schema.json:2: not UTF-8"):
        load_json(p)


def test_results_with_line_separators_in_outputs_read_back(tmp_path):
    """A model output with U+2028/U+2029/U+0085 is one JSONL line and reads back as written."""
    from harness.evals.results import load_results, write_result
    from tests.gates.synth import make_result

    r = make_result("s", {"ok": [1, 0, 1]})
    weird = "a\u2028b\u2029c\u0085d\re\x1cf\x1dg\x1eh"
    r.outputs[1]["output"] = weird
    write_result(r, tmp_path / "res")
    back = load_results(tmp_path / "res")["s"]
    assert back.outputs[1]["output"] == weird
    assert len(back.outputs) == 3 and len(back.rows) == 3


def test_config_models_refuse_bools_for_numbers_and_non_finite_numbers(tmp_path):
    from harness.train import load_train_config

    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"method: lora\ntrain_data: {data}\nlearning_rate: true\nlora: {{r: true}}\nnum_epochs: .inf\n"
                   "gradient_checkpointing: false\n")
    with pytest.raises(ConfigError) as e:
        load_train_config(cfg)
    msg = str(e.value)
    assert "field 'learning_rate': true is a yes/no value; this field takes a number" in msg
    assert "field 'lora.r': true is a yes/no value; this field takes a whole number" in msg
    assert "field 'num_epochs': Input should be a finite number" in msg
    assert "gradient_checkpointing" not in msg  # a real bool field still takes a bool
    cfg.write_text(f"method: lora\ntrain_data: {data}\nlearning_rate: 1e-4\nlora: {{r: '8'}}\n")  # PyYAML reads 1e-4 as text
    loaded = load_train_config(cfg)
    assert loaded.learning_rate == 1e-4 and loaded.lora.r == 8


def test_mc_case_with_unusable_choices_is_refused_at_load(tmp_path):
    import json
    import shutil

    from harness.evals.suite import load_suite
    from tests.conftest import REPO

    d = tmp_path / "suite"
    shutil.copytree(REPO / "tests/fixtures/suites/mini", d)
    lines = (d / "cases.jsonl").read_text().splitlines()
    n, mc = next((i, json.loads(line)) for i, line in enumerate(lines) if '"mc"' in line)
    for bad, fragment in [({**mc, "input": {**mc["input"], "choices": {"a": "x", "b": "y"}}}, "field 'input.choices': a list of at least 2 choices (got a dict)"),
                          ({**mc, "input": {**mc["input"], "choices": ["x", {"y": 1}]}}, "field 'input.choices.1': a choice is text or a number"),
                          ({**mc, "expected": {"answer": 7}}, "field 'expected.answer': the index of the right choice"),
                          ({**mc, "expected": {"answer": True}}, "field 'expected.answer'")]:
        (d / "cases.jsonl").write_text("\n".join(lines[:n] + [json.dumps(bad)] + lines[n + 1:]) + "\n")
        with pytest.raises(ConfigError) as e:
            load_suite(d)
        assert f"cases.jsonl:{n + 1}: {fragment}" in str(e.value)


def test_yaml_booleans_are_yaml_1_2(tmp_path):
    """`on:` (checkpoint_selection's key) stays a key and `no` stays text; only true/false are booleans."""
    raw = load_yaml(_yaml(tmp_path, b"on: suite\nlang: no\nyes: 1\nenabled: true\noff: False\n"))
    assert raw == {"on": "suite", "lang": "no", "yes": 1, "enabled": True, "off": False}
