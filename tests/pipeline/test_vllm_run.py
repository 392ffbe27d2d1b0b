"""`harness run` with `eval.backend: vllm` on the real model: the harness starts `vllm serve`,
evaluates base and candidate through it (the fresh adapter loaded into the server), gates,
records, promotes and stops the server; then `harness export CHANNEL --format vllm` prints a
`vllm serve` command that, run as printed, serves the channel's adapter and answers as the run's
candidate did."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import REPO

VLLM_BIN = REPO / ".venv-vllm" / "bin"
pytestmark = [pytest.mark.slow, pytest.mark.vllm,
              pytest.mark.skipif(not (VLLM_BIN / "python").is_file(), reason="no vLLM venv: run `make vllm`")]
EXAMPLE = REPO / "examples" / "ticket_triage"


def write_run(tmp_path: Path, base: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(
        "name: cost-only\nrules:\n  - metric: ticket_triage/prompt_tokens\n    max_ratio: 1.5\n")
    cfg = {
        "name": "vllm-loop", "base_model": str(base), "channel": "production", "policy": "policy.yaml",
        "suites": [str(REPO / "suites" / n) for n in ("ticket_triage", "safety", "general")],
        "data_checks": {"schema": str(REPO / "suites" / "ticket_triage" / "schema.json")},
        "train": {"method": "lora", "train_data": str(EXAMPLE / "train.jsonl"), "seed": 0, "max_steps": 2,
                  "batch_size": 2, "max_length": 448, "save_steps": 2, "learning_rate": 0.003,
                  "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]}},
        "eval": {"backend": "vllm", "dtype": "float32", "max_cases": 3, "latency_sample": 1,
                 "latency_suites": ["ticket_triage"], "invariance_sample": 0, "plan": "off"},
    }
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def test_run_on_a_vllm_server_completes_the_loop_and_the_exported_command_serves_the_channel(tmp_path, monkeypatch, capsys):
    from harness.models import resolve

    base = resolve("smollm2-135m-instruct").path  # the converted folder: a local model like any user's
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    assert main(["run", str(write_run(tmp_path, base)), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["gate_passed"] is True and summary["promoted"] is True

    from harness.registry import Registry

    reg = Registry(create=False)
    run_id = summary["run_id"]
    evals = reg.evals(run_id)
    assert {e["role"] for e in evals} >= {"baseline", "candidate"}
    results = {}
    for e in evals:
        summ = json.loads((Path(e["results_path"]) / "summary.json").read_text())
        assert summ["identity"]["engine"] == "vllm-server" and summ["served_by"]["served_model"] == "base"
        results[(e["role"], e["suite"])] = Path(e["results_path"])
    assert "Application startup complete" in (Path(summary["run_folder"]) / "vllm.log").read_text()

    # the exported command, run exactly as printed (vllm on PATH), serves the channel's adapter
    assert main(["export", "production", "--format", "vllm", "--port", "0"]) == 0
    command = capsys.readouterr().out.strip()
    argv = shlex.split(command)
    assert argv[:2] == ["vllm", "serve"] and "--enable-lora" in argv and "--lora-modules" in argv
    from harness.models.server import free_port

    port = free_port()
    argv[argv.index("--port") + 1] = str(port)
    env = dict(os.environ, PATH=f"{VLLM_BIN}:{os.environ['PATH']}", VLLM_CPU_OMP_THREADS_BIND="0-1",
               VLLM_CPU_NUM_OF_RESERVED_CPU="0")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "export.log", "wb"),
                            start_new_session=True)
    try:
        import requests

        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "export.log").read_text()[-2000:]
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(1)
        served = {m["id"] for m in requests.get(f"{url}/v1/models", timeout=10).json()["data"]}
        assert "production" in served
        # the channel answers a case as the run's candidate did through the harness's server
        cand = results[("candidate", "ticket_triage")]
        row = json.loads((cand / "outputs.jsonl").read_text().splitlines()[0])
        from harness.evals import load_suites

        [suite] = load_suites([REPO / "suites" / "ticket_triage"])
        case = next(c for c in suite.cases if c.id == row["case_id"])
        answer = requests.post(f"{url}/v1/chat/completions", timeout=300, json={
            "model": "production", "messages": suite.messages(case), "temperature": 0,
            "max_tokens": suite.spec.generation.max_new_tokens, "seed": 0}).json()
        assert answer["choices"][0]["message"]["content"] == row["output"]
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
