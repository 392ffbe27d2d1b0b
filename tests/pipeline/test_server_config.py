"""eval.backend in a run config: what a server-backed run needs, refused before any model loads."""

from __future__ import annotations

import json

import pytest

from harness.errors import ConfigError
from harness.runconfig import load_run_config
from tests.pipeline.test_pipeline import write_run


def with_eval(path, method: str = "lora", **ev):
    cfg = json.loads(json.dumps(__import__("yaml").safe_load(path.read_text())))
    cfg["eval"].update(ev)
    cfg["train"]["method"] = method
    path.write_text(json.dumps(cfg))
    return path


def test_openai_needs_the_servers_address_and_served_name(tiny_model_dir, tmp_path):
    path = with_eval(write_run(tmp_path, tiny_model_dir), backend="openai")
    with pytest.raises(ConfigError) as e:
        load_run_config(path)
    msg = str(e.value)
    assert "field 'eval.server.url': required with eval.backend openai" in msg
    assert "field 'eval.server.model': required with eval.backend openai" in msg
    bare = with_eval(path, backend="openai", server={"url": "localhost:8000", "model": "base"})
    with pytest.raises(ConfigError, match=r"'localhost:8000' is not an http\(s\) address: write http://localhost:8000"):
        load_run_config(bare)
    ok = with_eval(path, backend="openai", server={"url": "http://127.0.0.1:8000", "model": "base"})
    cfg, _, _ = load_run_config(ok)
    assert cfg.eval.backend == "openai" and cfg.eval.server.concurrency == 8 and cfg.eval.server.loglik_concurrency == 1


@pytest.mark.parametrize("method", ["prompt_tuning", "qlora", "full"])
def test_a_server_backend_refuses_adapters_a_server_cannot_serve_as_trained(method, tiny_model_dir, tmp_path):
    path = with_eval(write_run(tmp_path, tiny_model_dir), method=method, backend="vllm")
    with pytest.raises(ConfigError, match=f"serves LoRA adapters on the unquantised base .* not {method}: use eval.backend hf"):
        load_run_config(path)


def test_an_unknown_backend_is_named_with_the_choices(tiny_model_dir, tmp_path):
    path = with_eval(write_run(tmp_path, tiny_model_dir), backend="sglang")
    with pytest.raises(ConfigError, match=r"eval.backend.*'hf', 'vllm' or 'openai'|eval.backend.*hf.*vllm.*openai"):
        load_run_config(path)
