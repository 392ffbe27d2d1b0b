"""The channel history page: every promotion and rollback with headline metrics over time."""

from __future__ import annotations

import html
import re

import pytest

from tests.registry.conftest import BASE, fake_adapter

ROLLBACK_REASON = "<script>alert(3)</script> latency regression"


@pytest.fixture
def channel_registry(tmp_path):
    """Three gated runs promoted in turn to `production`, then one rollback."""
    from harness.registry import Registry

    reg = Registry(tmp_path / "registry.db")
    reg.register_base_model("smollm2-135m-instruct", BASE)
    runs = []
    for i, (rate, latency) in enumerate([(0.62, 0.30), (0.71, 0.31), (0.80, 0.55)]):
        run_id = reg.create_run({"method": "lora", "seed": i}, name=f"attempt {i}")
        reg.add_adapter(fake_adapter(tmp_path / f"a{i}", seed=i), method="lora", base_fingerprint=BASE, run_id=run_id)
        reg.record_eval(run_id, role="baseline", suite="mini", suite_hash="s" * 64, metrics={"mini/pass_rate": 0.5},
                        results_path="", results_hash="", model_fingerprint=BASE, adapter_hash=None)
        reg.record_eval(run_id, role="candidate", suite="mini", suite_hash="s" * 64,
                        metrics={"mini/pass_rate": rate, "mini/json_valid": rate + 0.1, "mini/latency_p50": latency,
                                 "mini/json_valid.field": 0.5},
                        results_path="", results_hash="", model_fingerprint=BASE, adapter_hash="x")
        reg.record_gate(run_id, {"passed": True, "rules": []}, True)
        reg.update_run(run_id, status="finished")
        reg.promote(run_id, "production", actor="ci")
        runs.append(run_id)
    reg.rollback("production", actor="oncall", reason=ROLLBACK_REASON)
    yield reg, runs
    reg.close()


def test_history_page_lists_every_move_and_metric(channel_registry, tmp_path):
    from harness.report import write_channel_report

    reg, runs = channel_registry
    out = tmp_path / "reports"
    out.mkdir()
    (out / f"{runs[0]}.html").write_text("<!doctype html>")  # a run report already written: linked
    path = write_channel_report("production", registry=reg, out_dir=out)
    assert path == out / "channel-production.html"
    page = path.read_text()
    assert "3 promotions, 1 rollbacks" in page
    rows = re.findall(r'<tr class="move-(promote|rollback)', page)
    assert rows == ["promote", "promote", "promote", "rollback"]
    assert f'<a href="{runs[0]}.html">' in page and f'<a href="{runs[1]}.html">' not in page
    assert "back to #2" in page and "serving now" in page  # the rollback restored the second promotion
    # the rollback reason is text, not markup
    assert html.escape(ROLLBACK_REASON) in page and "<script>alert" not in page
    # headline metrics over time: one chart per top-level metric, a point per move, rollbacks marked
    figures = re.findall(r"<figcaption><code>([^<]+)</code></figcaption>", page)
    assert figures == ["mini/pass_rate", "mini/json_valid", "mini/latency_p50"]
    chart = page[page.index("<figcaption><code>mini/pass_rate"):]
    chart = chart[:chart.index("</figure>")]
    assert len(re.search(r'<polyline points="([^"]+)"', chart).group(1).split()) == 4
    assert 'class="mark rollback"' in chart and "rollback #4" in chart
    assert "mini/pass_rate at move # 4: 0.71" in chart  # after the rollback it serves run 2 again
    assert "0.710" in page and "0.800" in page  # table columns: pass rate per move


def test_unknown_channel_is_a_clear_error(channel_registry, tmp_path):
    from harness.registry import NotFound
    from harness.report import write_channel_report

    reg, _ = channel_registry
    with pytest.raises(NotFound, match="no channel 'staging'"):
        write_channel_report("staging", registry=reg, out_dir=tmp_path)
