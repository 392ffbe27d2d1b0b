"""The OpenAI-compatible backend against a real vLLM server (`make vllm` builds it; these tests
are skipped, and say so, where it is not built): the same cases through HFBackend and through the
server give the same outputs, metrics and log-likelihoods in fp32, base and LoRA; an unknown
model name and a dead server are clear errors."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
pytestmark = [pytest.mark.slow, pytest.mark.vllm,
              pytest.mark.skipif(not VLLM_PYTHON.is_file() and not os.environ.get("HARNESS_VLLM"),
                                 reason="no vLLM venv: run `make vllm`")]
SPEC = "smollm2-135m-instruct"


def random_lora(out: Path) -> Path:
    """A LoRA on the real model with random, moderate weights: outputs change, stay fluent enough."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from harness.models import resolve

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve(SPEC).path, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.3)
    peft_model.save_pretrained(out)
    return out


def start_server(log: Path):
    from harness.models import resolve
    from harness.models.server import VLLMServer

    return VLLMServer(resolve(SPEC).path, "base", dtype="float32", log_path=log).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("vllm") / "vllm.log")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def lora(tmp_path_factory) -> Path:
    return random_lora(tmp_path_factory.mktemp("lora") / "adapter")


def selection():
    """A few cases of each shipped suite: generated ones and, from general, multiple-choice ones
    (scored by log-likelihood)."""
    from harness.evals import load_suites

    suites = load_suites([REPO / "suites" / n for n in ("ticket_triage", "safety", "general")])
    pick = {}
    for s in suites:
        gen = [c.id for c in s.cases if s.needs_generation(c)][:2]
        mc = [c.id for c in s.cases if not s.needs_generation(c)][:3]
        pick[s.name] = set(gen + mc)
    return suites, pick


def evaluate(backend, suites, pick, out: Path):
    from harness.evals import run_eval

    results, _ = run_eval(suites, SPEC, out=out, backend=backend, select=pick, latency_n=0, invariance_n=0, use_cache=False)
    return results


def test_server_and_hf_give_identical_outputs_metrics_and_choices_in_fp32_base_and_lora(server, lora, tmp_path):
    from harness.models import HFBackend
    from harness.models.openai_backend import OpenAIBackend

    suites, pick = selection()
    hf = HFBackend.from_spec(SPEC, dtype="float32")
    served = OpenAIBackend.connect(server.url, "base", SPEC, dtype="float32")
    assert served.fingerprint == hf.fingerprint  # the declared base, fingerprinted locally
    assert served.identity["engine"] == "vllm-server" and served.identity["served_model"] == "base"
    for label in ("base", "lora"):
        if label == "lora":
            assert hf.load_adapter(lora) == served.load_adapter(lora)  # named by the store hash on both
            assert served.adapter_hash == hf.adapter_hash
        a = evaluate(hf, suites, pick, tmp_path / f"hf-{label}")
        b = evaluate(served, suites, pick, tmp_path / f"vllm-{label}")
        n_mc = 0
        for name in a:
            out_a = {o["case_id"]: o for o in a[name].outputs}
            out_b = {o["case_id"]: o for o in b[name].outputs}
            assert out_a.keys() == out_b.keys() == pick[name]
            for cid, o in out_a.items():
                assert o["output"] == out_b[cid]["output"], (label, name, cid)
                assert o["prompt_tokens"] == out_b[cid]["prompt_tokens"] and o["completion_tokens"] == out_b[cid]["completion_tokens"]
                for metric, lps in o["logliks"].items():
                    n_mc += 1
                    other = out_b[cid]["logliks"][metric]
                    assert max(range(len(lps)), key=lps.__getitem__) == max(range(len(other)), key=other.__getitem__)
                    assert lps == pytest.approx(other, abs=1e-3)
            ma, mb = a[name].metrics, b[name].metrics
            assert {k: m["value"] for k, m in ma.items() if m["kind"] != "latency"} == \
                   {k: m["value"] for k, m in mb.items() if m["kind"] != "latency"}, (label, name)
        assert n_mc >= 3  # the multiple-choice cases were scored through the server's prompt log-probs
        assert b["general"].summary["served_by"]["url"] == server.url


def test_an_unknown_served_name_is_refused_with_what_the_server_serves(server):
    from harness.models.openai_backend import OpenAIBackend, ServerError

    with pytest.raises(ServerError) as e:
        OpenAIBackend.connect(server.url, "smollm3", SPEC)
    assert "does not serve a model named 'smollm3'" in str(e.value) and "serves: base" in str(e.value)


def test_a_server_killed_mid_eval_is_a_clear_error_and_no_results_are_written(tmp_path):
    from harness.evals import load_suites, run_eval
    from harness.models.openai_backend import OpenAIBackend, ServerError

    srv = start_server(tmp_path / "vllm.log")
    try:
        served = OpenAIBackend.connect(srv.url, "base", SPEC, dtype="float32", concurrency=1)
        [suite] = load_suites([REPO / "suites" / "ticket_triage"])
        done = []

        def kill_after_first():
            while not done:
                time.sleep(0.2)
            os.killpg(srv.proc.pid, signal.SIGKILL)

        _track(served, done)
        threading.Thread(target=kill_after_first, daemon=True).start()
        with pytest.raises(ServerError) as e:
            run_eval([suite], SPEC, out=tmp_path / "out", backend=served, max_cases=12, latency_n=0, invariance_n=0)
        assert "cannot reach the model server" in str(e.value) or "connection failed" in str(e.value)
        assert not (tmp_path / "out" / "ticket_triage").exists()  # nothing written as if evaluated
    finally:
        srv.stop()


def _track(backend, done: list) -> None:
    """Mark `done` once the backend's first completion has arrived."""
    original = backend._complete

    def complete(messages, config):
        out = original(messages, config)
        done.append(1)
        return out

    backend._complete = complete
