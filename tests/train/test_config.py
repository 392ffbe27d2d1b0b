"""The training config: every problem reported at once, before any model loads; named errors, exit 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.train import METHODS, TrainConfig, load_train_config
from tests.train.conftest import FIXTURES

REPO = Path(__file__).resolve().parents[2]


def write_yaml(path: Path, body: dict) -> Path:
    path.write_text(yaml.safe_dump(body))
    return path


def problems_of(source, **kw) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_train_config(source, **kw)
    return e.value.problems


def test_yaml_config_loads_with_paths_relative_to_its_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text((FIXTURES / "tiny_chat.jsonl").read_text())
    cfg = load_train_config(write_yaml(tmp_path / "run.yaml", {
        "method": "lora", "train_data": "data/train.jsonl", "output_dir": "out", "learning_rate": "2e-4",
        "lora": {"r": 4, "target_modules": ["q_proj", "v_proj"]},
    }))
    assert cfg.train_data == tmp_path / "data" / "train.jsonl"
    assert cfg.output_dir == tmp_path / "out"
    assert cfg.learning_rate == 2e-4  # YAML reads 2e-4 as a string; it still validates as a number
    assert cfg.lora.r == 4 and cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.base_model == "smollm2-135m-instruct" and cfg.gradient_checkpointing is False


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_has_a_default_learning_rate(method):
    data = FIXTURES / ("tiny_dpo.jsonl" if method == "dpo" else "tiny_chat.jsonl")
    cfg = load_train_config({"method": method, "train_data": str(data), "output_dir": "x"})
    assert cfg.learning_rate == METHODS[method].learning_rate
    assert cfg.family == ("dpo" if method == "dpo" else "sft")


def test_every_field_documents_itself():
    for name, f in TrainConfig.model_fields.items():
        assert f.description and len(f.description) > 10, name


def test_unknown_method_names_the_choices_and_a_suggestion():
    [p] = problems_of({"method": "lorra", "train_data": str(FIXTURES / "tiny_chat.jsonl")})
    assert "field 'method'" in p and "'lorra'" in p and "did you mean 'lora'" in p and "qlora" in p


def test_missing_dataset_is_named(tmp_path):
    [p] = problems_of({"method": "lora", "train_data": str(tmp_path / "nope.jsonl")})
    assert "field 'train_data'" in p and "nope.jsonl" in p and "does not exist" in p


def test_dpo_data_without_rejected_is_named_with_its_line():
    problems = problems_of({"method": "dpo", "train_data": str(FIXTURES / "dpo_no_rejected.jsonl")})
    assert any(re.search(r"dpo_no_rejected\.jsonl:1: field 'rejected': missing", p) for p in problems), problems


def test_sft_data_for_dpo_and_dpo_data_for_sft_are_refused():
    [p] = problems_of({"method": "dpo", "train_data": str(FIXTURES / "tiny_chat.jsonl")})
    assert "8 of 8 records are sft records" in p and "prompt, chosen, rejected" in p
    [p] = problems_of({"method": "lora", "train_data": str(FIXTURES / "tiny_dpo.jsonl")})
    assert "are dpo records" in p


def test_every_problem_is_reported_at_once(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    problems = problems_of(write_yaml(tmp_path / "run.yaml", {
        "method": "prefix_tuning", "train_data": "bad.jsonl", "validation_data": "missing.jsonl",
        "learning_rat": 0.1, "max_steps": 0, "gradient_checkpointing": True, "lora": {"rank": 4},
    }))
    text = "\n".join(problems)
    assert "field 'learning_rat': unknown key (did you mean 'learning_rate'?)" in text
    assert "field 'max_steps'" in text and "greater than 0" in text
    assert "field 'lora.rank': unknown key" in text
    assert "bad.jsonl:1: field 'messages': must end with an assistant message" in text
    assert "bad.jsonl:2: not valid JSON" in text
    assert "field 'validation_data': file" in text and "missing.jsonl" in text
    assert len(problems) >= 6


def test_cross_field_rules(tmp_path):
    data = str(FIXTURES / "tiny_chat.jsonl")
    [p] = problems_of({"method": "prefix_tuning", "train_data": data, "gradient_checkpointing": True})
    assert "prefix tuning does not work under gradient checkpointing" in p
    [p] = problems_of({"method": "lora", "train_data": data, "eval_steps": 5})
    assert "no validation_data" in p
    [p] = problems_of({"method": "lora", "train_data": data, "validation_data": data})
    assert "the same file as train_data" in p


def test_local_base_model_folder_is_checked_before_loading(tmp_path):
    [p] = problems_of({"method": "lora", "train_data": str(FIXTURES / "tiny_chat.jsonl"), "base_model": str(tmp_path)})
    assert "field 'base_model'" in p and "no config.json" in p


def test_config_hash_follows_content_not_paths(tmp_path):
    data = tmp_path / "copy.jsonl"
    data.write_text((FIXTURES / "tiny_chat.jsonl").read_text())
    a = load_train_config({"method": "lora", "train_data": str(FIXTURES / "tiny_chat.jsonl"), "output_dir": "a"})
    b = load_train_config({"method": "lora", "train_data": str(data), "output_dir": "b"})
    c = load_train_config({"method": "lora", "train_data": str(data), "output_dir": "b", "seed": 1})
    assert a.config_hash() == b.config_hash() != c.config_hash()
    default = load_train_config({"method": "lora", "train_data": str(data)}, base_dir=tmp_path)
    assert default.output_dir == tmp_path / "runs" / f"lora-{a.config_hash()[:12]}"


def test_readme_documents_every_field_and_method():
    section = (REPO / "README.md").read_text().split("## Training", 1)[1].split("\n## ", 1)[0]
    for name in [*TrainConfig.model_fields, *METHODS]:
        assert f"`{name}`" in section, f"README's Training section does not mention `{name}`"


def test_readme_training_example_validates(tmp_path):
    """The YAML shown in the README's Training section is a valid config."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Training", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    cfg = load_train_config(yaml.safe_load(block), base_dir=REPO)
    assert cfg.method in METHODS and cfg.train_data.is_file()


def run_cli(*args, cwd=REPO):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.mark.parametrize("body, needle", [
    ({"method": "lorra", "train_data": "train.jsonl"}, "unknown method 'lorra'"),
    ({"method": "lora", "train_data": "nope.jsonl"}, "does not exist"),
    ({"method": "dpo", "train_data": "pairs.jsonl"}, "field 'rejected': missing"),
])
def test_cli_bad_config_is_one_error_exit_2(tmp_path, body, needle):
    (tmp_path / "train.jsonl").write_text((FIXTURES / "tiny_chat.jsonl").read_text())
    (tmp_path / "pairs.jsonl").write_text((FIXTURES / "dpo_no_rejected.jsonl").read_text())
    proc = run_cli("train", str(write_yaml(tmp_path / "run.yaml", body)))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_missing_config_file(tmp_path):
    proc = run_cli("train", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_lora_layers_are_checked(tmp_path):
    base = {"method": "lora", "train_data": str(FIXTURES / "tiny_chat.jsonl")}
    for over, needle in [
        ({"method": "ia3", "lora": {"layers": [1]}}, "only lora, qlora and dpo"),
        ({"lora": {"layers": []}}, "non-empty list"),
        ({"lora": {"layers": [1], "target_modules": ".*proj"}}, "not a regular expression"),
    ]:
        with pytest.raises(ConfigError) as e:
            load_train_config({**base, **over})
        assert "lora.layers" in str(e.value) and needle in str(e.value)
    assert load_train_config({**base, "lora": {"layers": [0, 1]}}).lora.layers == [0, 1]
