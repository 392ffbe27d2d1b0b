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


def test_longer_demo_adds_the_arm_rules_to_the_demo_policy():
    from harness.gates import load_policy

    demo, arms = load_policy(REPO / "examples/ticket_triage/policy.yaml"), load_policy(REPO / "examples/ticket_triage/policy-arms.yaml")
    assert [r.label() for r in arms.rules[: len(demo.rules)]] == [r.label() for r in demo.rules]
    assert {r.beats_arm for r in arms.rules[len(demo.rules):]} == {"prompted"} and not any(r.beats_arm for r in demo.rules)


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
