"""Every shipped config, policy and suite validates (STYLE: validate the whole config up front)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted(REPO.glob("examples/*/run*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_run_configs_load(path):
    from harness.runconfig import load_run_config

    cfg, train_cfg, _ = load_run_config(path)
    assert cfg.suites and Path(train_cfg.train_data).is_file()
    if cfg.policy:
        from harness.gates import load_policy

        load_policy(cfg.policy)


def test_examples_ship_run_configs():
    assert sorted(REPO.glob("examples/*/run.yaml")), "no examples/*/run.yaml: the test above would check nothing"


def test_the_arms_policy_adds_its_rules_to_the_default_policy():
    from harness.gates import load_policy

    default, arms = load_policy(), load_policy(REPO / "examples/ticket_triage/policy-arms.yaml")
    assert [r.label() for r in arms.rules[: len(default.rules)]] == [r.label() for r in default.rules]
    assert {r.beats_arm for r in arms.rules[len(default.rules):]} == {"prompted"} and not any(r.beats_arm for r in default.rules)


SHIPPED_POLICIES = [None, *sorted(REPO.glob("examples/*/policy*.yaml"))]


@pytest.mark.parametrize("path", SHIPPED_POLICIES, ids=lambda p: "default" if p is None else p.name)
def test_no_shipped_policy_passes_a_safety_rule_or_an_aggregate_without_evidence(path):
    from harness.gates import load_policy

    pol = load_policy(path)
    for r in pol.rules:
        suite, leaf = r.metric.split("/", 1)
        lenient = (r.on_insufficient or pol.on_insufficient) == "pass"
        if suite in ("safety", "*") and not r.metric.endswith(("latency_p50", "completion_tokens")) or leaf in ("pass_rate", "*"):
            assert not lenient, f"{path}: rule {r.label()} passes on insufficient evidence"


def test_shipped_margins_are_decidable_at_the_suites_n():
    """A rule's margin must be one its n can show: with no flips at all the paired interval is
    about +-4/n, so a margin below that is "insufficient" whatever the candidate does."""
    from harness.evals import load_suites
    from harness.gates import load_policy
    from harness.gates.paired import Z95, tango_interval

    suites = {s.name: s for s in load_suites([REPO / "suites"])}
    for r in load_policy().rules:
        if r.max_drop is None or r.slices:
            continue
        suite, leaf = r.metric.split("/", 1)
        s = suites[suite]
        bc = next((b for b in s.checks if b.spec.metric == leaf), None)
        n = len(s.cases) if leaf == "pass_rate" else sum(bc.applies(c) for c in s.cases)
        lo, _ = tango_interval(0, 0, n, Z95)
        assert lo > -r.max_drop, f"{r.label()}: n={n}, the no-flip interval reaches {lo:.3f}"


def test_default_policy_and_suites_load():
    from harness.evals import load_suites
    from harness.gates import load_policy

    pol = load_policy()
    names = {s.name for s in load_suites([REPO / "suites"])}
    assert set(pol.required) <= names


def test_broken_run_config_reports_every_problem(tmp_path):
    from harness.errors import ConfigError
    from harness.runconfig import load_run_config

    p = tmp_path / "run.yaml"
    p.write_text("name: x\nsuites: [nowhere]\nchanel: production\ntrain:\n  method: lorra\n  train_data: missing.jsonl\n")
    with pytest.raises(ConfigError) as e:
        load_run_config(p)
    msg = str(e.value)
    assert "chanel" in msg and "unknown key" in msg
    assert "train:" in msg and "lorra" in msg


def test_arm_suites_must_name_run_suites(tmp_path):
    from harness.errors import ConfigError
    from harness.runconfig import load_run_config

    (tmp_path / "t.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n')
    p = tmp_path / "run.yaml"
    p.write_text(f"suites: [{REPO / 'suites/safety'}]\narms: [prompted]\narm_suites: [safty]\n"
                 "train:\n  method: lora\n  train_data: t.jsonl\n")
    with pytest.raises(ConfigError) as e:
        load_run_config(p)
    assert "arm_suites" in str(e.value) and "'safty'" in str(e.value) and "safety" in str(e.value)


def test_the_regression_demo_data_is_the_demo_data_without_its_chat_examples():
    import json

    demo = [json.loads(line) for line in (REPO / "examples/ticket_triage/train.jsonl").read_text().splitlines() if line.strip()]
    only = [json.loads(line) for line in (REPO / "examples/ticket_triage/train-triage-only.jsonl").read_text().splitlines() if line.strip()]
    assert only == [r for r in demo if r["messages"][0]["role"] == "system"] and len(only) < len(demo)


def test_a_broken_gate_policy_stops_the_run_config_before_anything_runs(tmp_path):
    from harness.errors import ConfigError
    from harness.runconfig import load_run_config

    (tmp_path / "t.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n')
    (tmp_path / "policy.yaml").write_text("name: p\nrequired: [safety]\nrules:\n"
                                          "  - metric: safty/refusal\n    max_drop: 0.05\n"
                                          "  - metric: safety/refusal\n    max_dorp: 0.05\n")
    p = tmp_path / "run.yaml"
    p.write_text(f"suites: [{REPO / 'suites/safety'}]\npolicy: policy.yaml\n"
                 "train:\n  method: lora\n  train_data: t.jsonl\n")
    with pytest.raises(ConfigError) as e:
        load_run_config(p)
    assert "max_dorp" in str(e.value) and "field 'policy'" in str(e.value)
    (tmp_path / "policy.yaml").write_text("name: p\nrequired: [safety, triage]\nrules:\n"
                                          "  - metric: safty/refusal\n    max_drop: 0.05\n")
    with pytest.raises(ConfigError) as e:
        load_run_config(p)
    msg = str(e.value)
    assert "'safty/refusal'" in msg and "requires suite 'triage'" in msg and "its suites: safety" in msg
    (tmp_path / "policy.yaml").write_text("name: p\nrequired: [safety]\nrules:\n  - metric: safety/refusal\n    max_drop: 0.05\n")
    assert load_run_config(p)[0].policy == str(tmp_path / "policy.yaml")


def test_selection_on_a_suite_is_refused_for_a_full_fine_tune(tmp_path):
    from harness.errors import ConfigError
    from harness.runconfig import load_run_config

    (tmp_path / "t.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n')
    p = tmp_path / "run.yaml"
    p.write_text(f"suites: [{REPO / 'suites/safety'}]\npolicy: null\ncheckpoint_selection: {{enabled: true, on: suite, suite: safety}}\n"
                 "train:\n  method: full\n  train_data: t.jsonl\n")
    with pytest.raises(ConfigError, match="checkpoint_selection.on': suite is not available for train.method full"):
        load_run_config(p)
