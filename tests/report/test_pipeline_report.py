"""A report rendered from what a real `harness run` on the tiny model recorded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_report_of_a_real_pipeline_run(tiny_model_dir, tmp_path, monkeypatch):
    from harness.pipeline import RunFailed, run
    from harness.registry import Registry
    from harness.report import write_run_report
    from tests.pipeline.test_pipeline import write_run

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # the pipeline's report stage writes reports/ in the working folder
    cfg = write_run(tmp_path, tiny_model_dir)
    reg = Registry(tmp_path / "home" / "registry.db")
    try:
        summary = run(cfg, reg)
    except RunFailed:
        summary = None  # a stage after training failed: the report still shows what was recorded
    run_id = summary["run_id"] if summary else reg.runs(1)[0]["id"]
    page = write_run_report(run_id, registry=reg, out_dir=tmp_path / "again").read_text()

    training = page[page.index('id="training"'):page.index('id="data"')]
    polylines = re.findall(r'<polyline points="([^"]+)"', training)
    assert len(polylines) == 2 and len(polylines[0].split()) >= 6  # train loss every step, validation loss too
    assert "train 20 validation 4" in training and "chosen:" in training
    data = page[page.index('id="data"'):page.index('id="flips"')]
    assert "training data" in data and "validation data" in data and "nothing blocking" in data
    if summary is None:
        assert "failed" in page and "No gate decision" in page
        return
    # the whole run: the pipeline's own report stage wrote the same page
    written = Path(summary["report"])
    assert written == Path("reports") / f"{run_id}.html" or written == tmp_path / "reports" / f"{run_id}.html"
    assert written.is_file() and reg.get_run(run_id)["report_path"] == summary["report"]
    assert "Gate passed" in page and summary["adapter_hash"] in page and "serving on" in page
    assert page.count('<line class="ci"') >= 4
    # the page the pipeline left behind was rewritten once the run finished: final status and promotion
    own = (tmp_path / written if not written.is_absolute() else written).read_text()
    assert "serving on" in own and "running" not in own[: own.index('id="gate"')]
