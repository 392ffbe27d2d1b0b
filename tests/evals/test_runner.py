"""The runner on the tiny model: results files, slices with n and intervals, cache, rescore."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.evals import CompletionCache, load_results, load_suite, run_eval

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests/fixtures/suites/mini"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_eval_writes_results_and_summary(tiny_backend, tmp_path, home):
    results, out = run_eval([MINI], "tiny", out=tmp_path / "r", backend=tiny_backend)
    r = results["mini"]
    files = {p.name for p in (out / "mini").iterdir()}
    assert files == {"outputs.jsonl", "results.jsonl", "summary.json"}
    rows = [json.loads(l) for l in (out / "mini/results.jsonl").read_text().splitlines()]
    # one row per case x applicable check: 12 gen cases x 2 checks + 6 mc cases x 1
    assert len(rows) == 12 * 2 + 6
    assert {"case_id", "metric", "passed", "score", "reason", "slices"} <= set(rows[0])
    m = r.metrics
    assert m["mini/json_valid"]["n"] == 12 and m["mini/mc"]["n"] == 6 and m["mini/pass_rate"]["n"] == 18
    lo, hi = m["mini/mc"]["ci"]
    assert 0 <= lo <= m["mini/mc"]["value"] <= hi <= 1
    sl = r.summary["slices"]["mini/json_valid"]
    assert sl["difficulty=hard"]["n"] == 4 and sl["difficulty=easy"]["n"] == 8
    lat = r.summary["latency"]
    assert len(lat["samples"]) == 2 and lat["p50"] > 0 and lat["tokens_per_s"] > 0
    outs = [json.loads(l) for l in (out / "mini/outputs.jsonl").read_text().splitlines()]
    assert all(o["output"] is None for o in outs if o["case_id"].startswith("mc-"))
    assert all(len(o["logliks"]["mc"]) == 4 for o in outs if o["case_id"].startswith("mc-"))
    # each row stands alone: the chat the model saw (its hash is the prompt_sha) and the expected value
    from harness.evals.runner import prompt_hash

    cases = {c.id: c for c in load_suite(MINI).cases}
    for o in outs:
        assert o["messages"][-1]["role"] == "user" and prompt_hash(o["messages"]) == o["prompt_sha"]
        assert o["expected"] == cases[o["case_id"]].expected


def test_second_run_served_from_cache(tiny_backend, tmp_path, home):
    first, _ = run_eval([MINI], "tiny", out=tmp_path / "a", backend=tiny_backend, latency_n=0)
    second, _ = run_eval([MINI], "tiny", out=tmp_path / "b", backend=tiny_backend, latency_n=0)
    t1, t2 = first["mini"].summary["timing"], second["mini"].summary["timing"]
    assert t1["generated"] == 12 and t1["from_cache"] == 0
    assert t2["generated"] == 0 and t2["from_cache"] == 12 and t2["logliks_from_cache"] == 24
    assert first["mini"].rows == second["mini"].rows
    # a different generation setting is a different cache entry
    db = CompletionCache(home / "cache.db")
    assert db.db.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 12
    db.close()


def test_cached_results_equal_fresh_batch_one(tiny_backend, tmp_path, home):
    cached, _ = run_eval([MINI], "tiny", out=tmp_path / "a", backend=tiny_backend, latency_n=0, batch_size=8)
    fresh, _ = run_eval([MINI], "tiny", out=tmp_path / "b", backend=tiny_backend, latency_n=0, batch_size=1, use_cache=False)
    assert [o["output"] for o in cached["mini"].outputs] == [o["output"] for o in fresh["mini"].outputs]


def test_rescore_recomputes_checks_without_generating(tiny_backend, tmp_path, home):
    suite_dir = tmp_path / "mini"
    shutil.copytree(MINI, suite_dir)
    _, out = run_eval([suite_dir], "tiny", out=tmp_path / "r", backend=tiny_backend, latency_n=0)
    before = load_results(out)["mini"]
    # change a check's parameter: contains "the" -> contains "e"
    y = (suite_dir / "suite.yaml").read_text().replace('value: "the"', 'value: "e"')
    (suite_dir / "suite.yaml").write_text(y)

    class NoGeneration:
        fingerprint = "x"

        def generate(self, *a, **k):
            raise AssertionError("rescore must not generate")

    results, _ = run_eval([suite_dir], "tiny", out=out, do_rescore=True, backend=NoGeneration())
    after = results["mini"]
    assert after.suite_hash == load_suite(suite_dir).hash != before.suite_hash
    assert [o["output"] for o in after.outputs] == [o["output"] for o in before.outputs]
    hits = sum("e" in (o["output"] or "").lower() for o in after.outputs if o["case_id"].startswith("m-"))
    assert after.metrics["mini/contains"]["value"] == pytest.approx(hits / 12)
    # a changed prompt means the saved outputs no longer answer it
    (suite_dir / "suite.yaml").write_text(y.replace("Reply with JSON.", "Reply in JSON only."))
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="prompt changed"):
        run_eval([suite_dir], "tiny", out=out, do_rescore=True)


def test_cli_eval_prints_tables_and_errors_cleanly(tiny_model_dir, tmp_path):
    env = {"HARNESS_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "harness.cli", "eval", str(MINI), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "json_valid" in proc.stdout and "difficulty=hard" in proc.stdout and "latency at batch 1" in proc.stdout
    bad = subprocess.run(cmd[:5] + ["--model", str(tmp_path / "nope")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_shared_choices_are_scored_once_and_counted_honestly(tiny_backend, tmp_path, home):
    suite_dir = tmp_path / "mini"
    shutil.copytree(MINI, suite_dir)
    y = (suite_dir / "suite.yaml").read_text().replace(
        "slices: [kind, difficulty]",
        "  - check: loglik_choice\n    id: mc_norm\n    normalize_length: true\n    where: {kind: mc}\nslices: [kind, difficulty]",
    )
    (suite_dir / "suite.yaml").write_text(y)
    results, _ = run_eval([suite_dir], "tiny", out=tmp_path / "r", backend=tiny_backend, latency_n=0)
    t = results["mini"].summary["timing"]
    # two checks ask for the same 6 x 4 continuations: 24 computed, none claimed from the cache
    assert t["logliks_computed"] == 24 and t["logliks_from_cache"] == 0
    assert results["mini"].metrics["mini/mc_norm"]["n"] == 6


def test_max_cases_evaluates_a_fixed_paired_sample(tiny_backend, tmp_path, home):
    full = load_suite(MINI)
    a, _ = run_eval([MINI], "tiny", out=tmp_path / "a", backend=tiny_backend, latency_n=0, max_cases=7)
    b, _ = run_eval([MINI], "tiny", out=tmp_path / "b", backend=tiny_backend, latency_n=0, max_cases=7)
    ids = [o["case_id"] for o in a["mini"].outputs]
    assert len(ids) == 7 and ids == [o["case_id"] for o in b["mini"].outputs]  # the same cases every time
    assert ids == [c.id for c in full.cases if c.id in set(ids)]  # kept in suite order
    assert a["mini"].summary["sampled"] == {"cases": 7, "of": len(full.cases)}
    assert a["mini"].metrics["mini/pass_rate"]["n"] == 7
    assert a["mini"].suite_hash == full.hash
    # a bigger sample contains the smaller one (one fixed ranking), and N >= the suite is all of it
    c, _ = run_eval([MINI], "tiny", out=tmp_path / "c", backend=tiny_backend, latency_n=0, max_cases=12)
    assert set(ids) < {o["case_id"] for o in c["mini"].outputs}
    d, _ = run_eval([MINI], "tiny", out=tmp_path / "d", backend=tiny_backend, latency_n=0, max_cases=100)
    assert len(d["mini"].outputs) == len(full.cases) and "sampled" not in d["mini"].summary


def test_fp32_and_bf16_outputs_never_share_a_cache_entry(tiny_model_dir, tmp_path, home):
    from harness.models import HFBackend

    fp32 = HFBackend.from_spec(str(tiny_model_dir), dtype="float32")
    bf16 = HFBackend.from_spec(str(tiny_model_dir), dtype="bfloat16")
    a, out_a = run_eval([MINI], "tiny", backend=fp32, latency_n=0)
    b, out_b = run_eval([MINI], "tiny", backend=bf16, latency_n=0)
    again, _ = run_eval([MINI], "tiny", backend=fp32, latency_n=0)
    assert b["mini"].summary["timing"]["generated"] == 12 and b["mini"].summary["timing"]["logliks_computed"] == 24
    assert again["mini"].summary["timing"]["from_cache"] == 12
    assert a["mini"].identity["dtype"] == "float32" and b["mini"].identity["dtype"] == "bfloat16"
    assert load_results(out_b)["mini"].summary["identity"] == b["mini"].identity
    assert out_a != out_b and "float32" in out_a.name and "bfloat16" in out_b.name  # side by side, never over each other
    keys = {CompletionCache.generation_key(be.identity, be.fingerprint, None, [{"role": "user", "content": "x"}], {})
            for be in (fp32, bf16)}
    assert len(keys) == 2


def test_each_eval_checks_batch_invariance_on_fresh_outputs(tiny_backend, tmp_path, home):
    r, _ = run_eval([MINI], "tiny", out=tmp_path / "a", backend=tiny_backend, latency_n=0)
    inv = r["mini"].summary["batch_invariance"]
    assert inv == {"checked": 2, "equal": 2, "differ": []}
    # the latency sample is timed with products sized to each request: its text is no evidence
    r, _ = run_eval([MINI], "tiny", out=tmp_path / "b", backend=tiny_backend, latency_n=3, use_cache=False)
    assert r["mini"].summary["batch_invariance"]["checked"] == 2
    # outputs served from the cache were checked when they were generated
    r, _ = run_eval([MINI], "tiny", out=tmp_path / "c", backend=tiny_backend, latency_n=0)
    assert r["mini"].summary["batch_invariance"]["checked"] == 0 and "cache" in r["mini"].summary["batch_invariance"]["why"]


def test_latency_is_timed_alone_and_invariance_is_checked_on_the_batch_invariant_path(tiny_backend, tmp_path, home):
    """The latency sample runs `timed` (products sized to the request, as a server runs a lone
    request); the invariance check regenerates alone on the same fixed-block products as the batch."""
    import dataclasses

    from harness.models import HFBackend

    calls = []

    class Spy(HFBackend):
        def generate(self, requests, config, progress=None):
            calls.append((len(requests), config.batch_size, config.timed))
            return super().generate(requests, config, progress)

    spy = Spy(**{f.name: getattr(tiny_backend, f.name) for f in dataclasses.fields(HFBackend)})
    run_eval([MINI], "tiny", out=tmp_path / "a", backend=spy, latency_n=3, invariance_n=2, use_cache=False)
    assert calls.count((1, 1, True)) == 3  # the latency sample
    assert calls.count((1, 1, False)) == 2  # the invariance check
    assert all(not timed for n, _, timed in calls if n > 1)  # the suite itself


def test_an_output_that_changes_alone_is_reported_loudly(tiny_backend, tmp_path, home, capsys):
    """A backend whose batch-1 text differs (as generate() in bf16 can): the check must say so."""
    import dataclasses

    from harness.models import HFBackend

    class BatchSensitive(HFBackend):
        def generate(self, requests, config, progress=None):
            out = super().generate(requests, config, progress)
            if config.batch_size == 1:
                out = [dataclasses.replace(c, text=c.text + " (alone)") for c in out]
            return out

    sensitive = BatchSensitive(**{f.name: getattr(tiny_backend, f.name) for f in dataclasses.fields(HFBackend)})
    r, _ = run_eval([MINI], "tiny", out=tmp_path / "a", backend=sensitive, latency_n=0, use_cache=False)
    inv = r["mini"].summary["batch_invariance"]
    assert inv["checked"] == 2 and inv["equal"] == 0 and len(inv["differ"]) == 2
    err = capsys.readouterr()
    assert "WARNING" in err.out + err.err and "not batch-invariant" in err.out + err.err
