"""Registry paths are kept relative to `$HARNESS_HOME`: a home copied elsewhere (another machine,
another folder) still finds its results and adapters; printed paths are absolute."""

from __future__ import annotations

import json
import shutil
import sqlite3

from harness.cli import main
from tests.pipeline.test_pipeline import write_run


def test_a_moved_home_still_finds_its_results_and_adapters(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from harness.pipeline import run
    from harness.registry import Registry

    home = tmp_path / "home"
    monkeypatch.setenv("HARNESS_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # the report goes to ./reports, outside the home
    s = run(write_run(tmp_path, tiny_model_dir), Registry(home / "registry.db"))
    assert s["promoted"] is True
    with sqlite3.connect(home / "registry.db") as db:
        results = [r[0] for r in db.execute("SELECT results_path FROM evals")]
        store = [r[0] for r in db.execute("SELECT store_path FROM adapters")]
        report = db.execute("SELECT report_path FROM runs").fetchone()[0]
        dataset = db.execute("SELECT path FROM datasets").fetchone()[0]
    assert results and all(p.startswith("$HARNESS_HOME/") for p in results), results
    assert store == [f"$HARNESS_HOME/adapters_store/{s['adapter_hash']}"]
    # outside the home: absolute, never relative to the folder a command happened to run in
    assert report == str(tmp_path / "reports" / f"{s['run_id']}.html")
    assert dataset == str(tmp_path / "train.jsonl")

    moved = tmp_path / "elsewhere" / "home"
    shutil.copytree(home, moved)
    shutil.rmtree(home)
    monkeypatch.setenv("HARNESS_HOME", str(moved))
    reg = Registry(moved / "registry.db")
    for e in reg.evals(s["run_id"]):
        assert e["results_path"].startswith(str(moved)) and (moved / e["results_path"][len(str(moved)) + 1:]).is_dir()
    assert reg.get_adapter(s["adapter_hash"])["store_path"] == str(moved / "adapters_store" / s["adapter_hash"])
    served = reg.export("production", fmt="path")  # verified against its manifest in the moved store
    assert served.startswith(str(moved))
    assert main(["show", s["run_id"], "--json", "--registry", str(moved / "registry.db")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert all(e["results_path"].startswith(str(moved)) for e in shown["evals"])
