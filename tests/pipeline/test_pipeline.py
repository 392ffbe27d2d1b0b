"""The wrapped run end to end on the tiny model: every registry row, the cached baseline, and
an interrupted run resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests/fixtures/suites/mini"

pytestmark = pytest.mark.slow


def write_run(tmp_path: Path, model_dir: Path, *, max_steps=6, save_steps=3, channel="production") -> Path:
    rows = []
    for i in range(24):
        rows.append({"messages": [
            {"role": "system", "content": "Reply with JSON."},
            {"role": "user", "content": f"Describe thing number {i} of the inventory."},
            {"role": "assistant", "content": json.dumps({"item": i, "ok": True})},
        ]})
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:20]) + "\n")
    (tmp_path / "val.jsonl").write_text("\n".join(json.dumps(r) for r in rows[20:]) + "\n")
    (tmp_path / "policy.yaml").write_text(
        "name: tiny\nrequired: [mini]\nrules:\n  - metric: mini/mc\n    max_drop: 1.0\n  - metric: mini/json_valid\n    min: 0.0\n"
    )
    cfg = {
        "name": "tiny-run",
        "base_model": str(model_dir),
        "suites": [str(MINI)],
        "policy": "policy.yaml",
        "channel": channel,
        "train": {"method": "lora", "train_data": "train.jsonl", "validation_data": "val.jsonl", "max_steps": max_steps,
                  "batch_size": 4, "learning_rate": 0.01, "max_length": 64, "save_steps": save_steps, "logging_steps": 1,
                  "eval_steps": save_steps, "lora": {"r": 4, "alpha": 8, "target_modules": "all-linear"}},
        "eval": {"latency_sample": 2},
    }
    import yaml

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_full_pipeline_writes_every_registry_row(tiny_model_dir, tmp_path, home):
    from harness.models import model_fingerprint
    from harness.pipeline import run
    from harness.registry import Registry

    cfg = write_run(tmp_path, tiny_model_dir)
    reg = Registry(home / "registry.db")
    s = run(cfg, reg)
    assert s["gate_passed"] is True and s["promoted"] is True and s["baseline_cached"] is False
    run_row = reg.get_run(s["run_id"])
    assert run_row["status"] == "finished"
    assert run_row["base_fingerprint"] == model_fingerprint(tiny_model_dir)
    assert run_row["adapter_hash"] == s["adapter_hash"]
    assert reg.get_base_model(model_fingerprint(tiny_model_dir)) is not None
    assert reg.get_dataset(run_row["dataset_hash"])["rows"] == 20
    assert reg.get_adapter(s["adapter_hash"])["method"] == "lora"
    # the candidate's eval rows name the adapter by the store's hash: the join finds them
    joined = reg.db.execute("SELECT COUNT(*) FROM evals e JOIN adapters a ON a.hash = e.adapter_hash WHERE e.run_id = ?",
                            [s["run_id"]]).fetchone()[0]
    assert joined == 1
    evals = reg.evals(s["run_id"])
    assert {(e["role"], e["suite"]) for e in evals} == {("baseline", "mini"), ("candidate", "mini")}
    assert reg.latest_gate(s["run_id"])["passed"]
    [status] = [c for c in reg.status() if c["channel"] == "production"]
    assert status["adapter"]["hash"] == s["adapter_hash"] and status["run_id"] == s["run_id"]
    assert Path(s["adapter"]).is_dir() and Path(s["summary_md"]).read_text().startswith("## ")

    # the same config again reuses the cached baseline
    s2 = run(cfg, reg)
    assert s2["baseline_cached"] is True and s2["promoted"] is False  # already active: nothing to move
    assert s2["adapter_hash"] == s["adapter_hash"]  # deterministic training on CPU


def test_failed_gate_is_never_promoted(tiny_model_dir, tmp_path, home):
    """From the CLI with --json: stdout is the JSON summary alone (tables and progress go to stderr)."""
    from harness.registry import Registry

    cfg = write_run(tmp_path, tiny_model_dir)
    (tmp_path / "policy.yaml").write_text("name: strict\nrules:\n  - metric: mini/mc\n    must_improve: true\n")
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(cfg), "--json"], capture_output=True, text=True,
                       env=dict(os.environ, HARNESS_HOME=str(home)), timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(p.stdout)
    assert "data check" in p.stderr and "gate (strict): FAILED" in p.stderr
    reg = Registry(home / "registry.db")
    assert s["gate_passed"] is False and s["promoted"] is False
    assert not [c for c in reg.status() if c["channel"] == "production"]
    assert reg.get_run(s["run_id"])["status"] == "finished"


def test_hub_base_at_a_revision_records_its_commit(tiny_model_dir, tmp_path, home):
    """base_model `org/name@tag` from the hub cache, offline: the run records the commit the tag
    resolved to, and `harness show` prints it."""
    import yaml

    from harness.registry import Registry
    from tests.models.test_specs import COMMIT, build_hub_cache

    cache = build_hub_cache(tmp_path / "hub", tiny_model_dir)
    cfg = write_run(tmp_path, tiny_model_dir, max_steps=2, save_steps=2)
    c = yaml.safe_load(cfg.read_text())
    c["base_model"] = "tinyorg/tiny-llama@v1"
    cfg.write_text(yaml.safe_dump(c))
    env = dict(os.environ, HARNESS_HOME=str(home), HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(cfg), "--json"], capture_output=True, text=True,
                       env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    run_id = json.loads(p.stdout)["run_id"]
    with Registry(home / "registry.db") as reg:
        assert reg.get_run(run_id)["extra"]["base_revision"] == COMMIT
    shown = subprocess.run([sys.executable, "-m", "harness.cli", "show", run_id], capture_output=True, text=True, env=env)
    assert shown.returncode == 0 and f"(hub commit {COMMIT})" in shown.stdout, shown.stdout + shown.stderr


def _default_signals():
    # a shell that ignores SIGINT for background jobs passes that on: restore it for the child
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_resumes(tiny_model_dir, tmp_path, home, sig):
    cfg = write_run(tmp_path, tiny_model_dir, max_steps=30, save_steps=2)
    env = dict(os.environ, HARNESS_HOME=str(home))
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(cfg)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    runs = home / "runs"
    deadline = time.time() + 600  # generous: a loaded 2-core machine is slow, and the loop ends at the first checkpoint
    while time.time() < deadline:
        ckpts = list(runs.glob("*/train/checkpoint-*/trainer_state.json")) if runs.exists() else []
        if ckpts:
            break
        time.sleep(0.5)
    assert ckpts, "training never wrote a checkpoint"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "interrupted" in err and "--resume" in err, err[-2000:]
    run_id = ckpts[0].parts[-4]

    from harness.registry import Registry

    reg = Registry(home / "registry.db")
    assert reg.get_run(run_id)["status"] == "interrupted"
    assert ("SIGTERM" in reg.get_run(run_id)["error"]) == (sig == signal.SIGTERM)
    assert not reg.status()  # nothing promoted
    state = json.loads((runs / run_id / "state.json").read_text())
    assert "train" not in state["done"] and "baseline" in state["done"]
    # finish faster on resume: same run, training continues from its checkpoint
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--resume", run_id, "--json"], env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    summary = json.loads(p.stdout)
    assert summary["run_id"] == run_id and summary["gate_passed"] is not None
    assert Registry(home / "registry.db").get_run(run_id)["status"] == "finished"
    assert "resuming" in p.stderr


def test_sampled_run_with_an_arm_on_one_suite(tiny_model_dir, tmp_path, home):
    """eval.max_cases: base, candidate and the arm see the same fixed sample; the sampled baseline
    sits beside the full one and is reused; arm_suites limits the arm to the named suites."""
    import yaml

    from harness.evals import load_results
    from harness.pipeline import run
    from harness.registry import Registry

    cfg_path = write_run(tmp_path, tiny_model_dir, max_steps=2, save_steps=2)
    cfg = yaml.safe_load(cfg_path.read_text())
    import shutil

    other = tmp_path / "other"
    shutil.copytree(MINI, other)
    (other / "suite.yaml").write_text((other / "suite.yaml").read_text().replace("name: mini", "name: other", 1))
    cfg["suites"].append(str(other))
    cfg["eval"]["max_cases"] = 8
    cfg.update(arms=["prompted"], arm_suites=["mini"], shots=2)
    cfg_path.write_text(yaml.safe_dump(cfg))
    reg = Registry(home / "registry.db")
    s = run(cfg_path, reg)
    assert Path(s["baseline_results"]).name.endswith("-n8")
    base, cand = load_results(s["baseline_results"]), load_results(s["candidate_results"])
    for name in base:
        ids = [o["case_id"] for o in base[name].outputs]
        assert len(ids) == min(8, base[name].summary.get("sampled", {}).get("of", len(ids)))
        assert ids == [o["case_id"] for o in cand[name].outputs]
    state = json.loads((Path(s["run_folder"]) / "state.json").read_text())
    arm = load_results(state["done"]["arms"]["results"]["prompted"])
    assert list(arm) == ["mini"] and [o["case_id"] for o in arm["mini"].outputs] == [o["case_id"] for o in base["mini"].outputs]
    assert {(e["role"], e["suite"]) for e in reg.evals(s["run_id"])} >= {("prompted", "mini"), ("baseline", "other")}
    # the report's cost table puts the arm's tokens per call beside baseline and candidate
    page = Path(s["report"]).read_text()
    cost = page[page.index('id="cost"'):]
    cost = cost[:cost.index("</table>")]
    assert [r.split("</td>")[0].split(">")[-1] for r in cost.split("<tr>")[2:]] == ["baseline", "candidate", "prompted"]
    assert run(cfg_path, reg)["baseline_cached"] is True


def _with_selection(cfg_path: Path, selection: dict) -> Path:
    import yaml

    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["checkpoint_selection"] = selection
    cfg_path.write_text(yaml.safe_dump(cfg))
    return cfg_path


def test_selection_on_a_suite_split_leaves_those_cases_out_of_the_gate(tiny_model_dir, tmp_path, home):
    from harness.evals import load_suite
    from harness.evals.runner import selection_split
    from harness.pipeline import RunState, run
    from harness.registry import Registry

    cfg = _with_selection(write_run(tmp_path, tiny_model_dir),
                          {"enabled": True, "on": "suite", "suite": "mini", "metric": "pass_rate", "max_cases": 6})
    s = run(cfg, Registry(home / "registry.db"))
    state = RunState.load(s["run_id"])
    sel = state.records.get("select_checkpoint")
    split = [c.id for c in selection_split(load_suite(MINI), 6)]
    assert sel.on == "suite" and sel.excluded == {"mini": split} and len(sel.scores) == 3
    comparison = json.loads((state.folder / "comparison.json").read_text())
    total = len(load_suite(MINI).cases)
    assert comparison["metrics"]["mini/pass_rate"]["n"] == total - 6
    flipped = {c for m in comparison["metrics"].values() for c in m["improved"] + m["regressed"]}
    assert not flipped & set(split)
    assert json.loads((state.folder / "decision.json").read_text())["excluded"] == {"mini": 6}
    # the candidate was evaluated with its adapter, though selection had loaded it and switched it off
    from harness.evals import load_results

    cand = load_results(state.records.get("candidate").results)["mini"]
    assert cand.adapter_hash and cand.summary["latency"]["paired"]


def test_selection_on_validation_loss_scores_no_suite_case(tiny_model_dir, tmp_path, home, monkeypatch):
    import harness.evals as evals
    from harness.pipeline import RunState, run
    from harness.registry import Registry

    cfg = _with_selection(write_run(tmp_path, tiny_model_dir), {"enabled": True, "on": "validation"})
    calls = []
    real = evals.evaluate_suite
    monkeypatch.setattr(evals, "evaluate_suite", lambda *a, **k: calls.append(a[1].name) or real(*a, **k))
    s = run(cfg, Registry(home / "registry.db"))
    state = RunState.load(s["run_id"])
    sel = state.records.get("select_checkpoint")
    losses = {h["step"]: h["eval_loss"] for h in state.records.get("train").manifest["loss_history"] if "eval_loss" in h}
    assert sel.on == "validation" and set(sel.scores.values()) <= set(losses.values())
    assert sel.scores[sel.selected] == min(sel.scores.values())
    assert calls == []  # evaluate_suite is only reached through run_eval for baseline and candidate
    assert sel.excluded is None


def test_latency_is_timed_for_both_models_in_the_run_even_with_a_cached_baseline(tiny_model_dir, tmp_path, home):
    from harness.evals import load_results
    from harness.pipeline import RunState, run
    from harness.registry import Registry

    reg = Registry(home / "registry.db")
    first = run(write_run(tmp_path, tiny_model_dir), reg)
    second = run(write_run(tmp_path, tiny_model_dir, channel=None), reg)
    assert second["baseline_cached"] is True
    state = RunState.load(second["run_id"])
    timed = Path(state.records.get("candidate").baseline_timed)
    assert timed.parent == state.folder  # the run's own copy: the cached baseline folder stays as it was
    base, cand = load_results(timed)["mini"], load_results(state.records.get("candidate").results)["mini"]
    lb, lc = base.summary["latency"], cand.summary["latency"]
    assert lb["paired"] and lc["paired"] and len(lb["samples"]) == len(lc["samples"]) == 2
    assert [s["case_id"] for s in lb["samples"]] == [s["case_id"] for s in lc["samples"]]
    assert not load_results(state.records.get("baseline").results)["mini"].summary.get("latency")
    # the registry records (and the report reads) the copy that was compared
    [row] = [e for e in reg.evals(second["run_id"]) if e["role"] == "baseline"]
    assert Path(row["results_path"]).parent == timed
    assert "mini/latency_p50" in json.loads((state.folder / "comparison.json").read_text())["metrics"]
    assert first["run_id"] != second["run_id"]


def test_a_selected_checkpoint_is_stored_without_its_trainer_state(tiny_model_dir, tmp_path):
    """A trainer checkpoint holds optimizer, scheduler and RNG pickles beside the adapter: the
    store refuses pickles, so only the adapter's own files are stored."""
    from harness.pipeline import adapter_files
    from harness.registry import Registry
    from tests.conftest import make_adapter

    ckpt = make_adapter(tiny_model_dir, tmp_path / "checkpoint-4", "lora")
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        (ckpt / name).write_bytes(b"\\x80\\x04pickle")
    (ckpt / "trainer_state.json").write_text("{}")
    kept = {f.name for f in adapter_files(ckpt)}
    assert "adapter_model.safetensors" in kept and "adapter_config.json" in kept
    assert not kept & {"optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin", "trainer_state.json"}
    only = tmp_path / "only"
    only.mkdir()
    for f in adapter_files(ckpt):
        (only / f.name).write_bytes(f.read_bytes())
    reg = Registry(tmp_path / "r.db", store_root=tmp_path / "store")
    h = reg.add_adapter(only, method="lora", base_fingerprint="f" * 64)
    assert not reg.store.problems(h)


@pytest.mark.parametrize("method", ["full", "qlora"])
def test_full_and_qlora_runs_are_evaluated_as_trained(method, tiny_model_dir, tmp_path, home):
    """`method: full` stores and evaluates the whole trained model; `qlora` evaluates its adapter
    on the 4-bit NF4 base it trained on, not on the full-precision one. Both finish the run."""
    import yaml

    from harness.evals import load_results
    from harness.models import model_fingerprint
    from harness.pipeline import run
    from harness.registry import Registry

    cfg_path = write_run(tmp_path, tiny_model_dir, max_steps=2, save_steps=2)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["train"]["method"] = method
    if method == "full":
        del cfg["train"]["lora"]
        cfg["train"]["learning_rate"] = 1e-3
    cfg_path.write_text(yaml.safe_dump(cfg))
    reg = Registry(home / "registry.db")
    s = run(cfg_path, reg)
    assert reg.get_run(s["run_id"])["status"] == "finished" and s["gate_passed"] is not None
    cand = load_results(s["candidate_results"])["mini"]
    base = load_results(s["baseline_results"])["mini"]
    stored = Path(s["adapter"])
    assert reg.get_adapter(s["adapter_hash"])["method"] == method
    if method == "full":
        assert (stored / "model.safetensors").is_file() and not (stored / "adapter_config.json").exists()
        assert cand.adapter_hash is None and cand.model_fingerprint == model_fingerprint(stored) != base.model_fingerprint
        assert s["promoted"] is True and reg.export("production", fmt="lora-modules").startswith(f"--model {stored} ")
    else:
        assert cand.identity["quantization"] == "nf4" and "quantization" not in base.identity
        assert cand.adapter_hash == s["adapter_hash"] and cand.model_fingerprint == base.model_fingerprint
    assert cand.identity["dtype"] == base.identity["dtype"] and cand.identity["engine"] == base.identity["engine"]
    state = json.loads((Path(s["run_folder"]) / "state.json").read_text())
    assert state["done"]["candidate"]["runs_on"] == ("its own weights (full fine-tune)" if method == "full"
                                                     else "the 4-bit NF4 base it trained on")
    # the paired latency timed the candidate as it runs too
    assert cand.summary["latency"]["paired"] is True
