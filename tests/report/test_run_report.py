"""The run report, rendered from a recorded tiny-model run: content of every section, escaping of
model outputs, self-containment, and what a partial or altered record looks like."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.report.recorded import RUN_NAME, XSS


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside <script> elements."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def parse(page: str) -> Tags:
    t = Tags()
    t.feed(page)
    return t


@pytest.fixture(scope="module")
def report(recorded, tmp_path_factory):
    from harness.registry import Registry
    from harness.report import write_run_report

    out = tmp_path_factory.mktemp("reports")
    with Registry(recorded["registry"]) as reg:
        path = write_run_report(recorded["run_id"], registry=reg, out_dir=out, run_dir=recorded["folder"])
    return path, path.read_text(encoding="utf-8")


def test_writes_one_file_named_after_the_run(report, recorded):
    path, page = report
    assert path.name == f"{recorded['run_id']}.html" and path.is_file()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")


def test_header_names_verdict_model_adapter_data_config_environment(report, recorded):
    from harness.registry import Registry

    _, page = report
    with Registry(recorded["registry"]) as reg:
        run = reg.get_run(recorded["run_id"])
    assert recorded["decision"]["passed"] is False and "Gate failed" in page
    assert str(recorded["model_dir"]) in page and run["base_fingerprint"][:12] in page
    assert recorded["adapter_hash"] in page and "lora" in page
    assert run["dataset_hash"][:12] in page and "17 rows" in page
    assert run["config_hash"][:12] in page and "max_steps" in page  # the config itself, in a <details>
    assert run["environment"]["python"] in page and run["environment"]["platform"] in page
    assert html.escape(RUN_NAME) in page and RUN_NAME not in page


def test_gate_table_lists_every_rule_with_its_numbers(report, recorded):
    _, page = report
    section = page[page.index('id="gate"'):page.index('id="metrics"')]
    rules = recorded["decision"]["rules"]
    assert len(rules) >= 6
    assert section.count("<tr class=") == len(rules)
    for r in rules:
        assert html.escape(r["reason"]) in section
        assert f"v-{r['verdict'].replace('_', '-')}" in section
    blocking = [r for r in rules if r["blocking"]]
    assert blocking and section.count(">blocks</span>") == len(blocking)
    # blocking rules come first
    first = re.search(r'<tr class="([^"]*)">', section).group(1)
    assert first == "blocking"


def test_metric_comparison_has_a_forest_plot_with_intervals(report, recorded):
    _, page = report
    section = page[page.index('id="metrics"'):page.index('id="slices"')]
    metrics = recorded["comparison"]["metrics"]
    rates = [k for k, m in metrics.items() if m["kind"] == "rate"]
    forest = section[:section.index("</svg>")]
    assert forest.count('<line class="ci"') == len(rates)
    for name in rates:
        m = metrics[name]
        assert f"{name}: delta {m['delta']:+.3f} [{m['ci'][0]:+.3f}, {m['ci'][1]:+.3f}]" in forest
    # the rule's non-inferiority margin on mini/mc (max_drop 0.5) is drawn
    assert '<line class="limit"' in forest
    # the ratio plot holds latency and tokens
    assert section.count("<svg") == 2 and "mini/latency_p50: ratio" in section


def test_slices_heat_map_with_n_and_hard_slices(report, recorded):
    _, page = report
    section = page[page.index('id="slices"'):page.index('id="latency"')]
    assert "difficulty=hard" in section and "difficulty=easy" in section and "kind=mc" in section
    hard_row = section[section.index("difficulty=hard"):]
    assert hard_row.index('class="tag hard"') < hard_row.index("</tr>")
    n_hard = recorded["comparison"]["slices"]["mini/pass_rate"]["difficulty=hard"]["n"]
    assert f"n={n_hard}" in hard_row[:hard_row.index("</tr>")]
    assert "rgba(22, 163, 74" in section  # gains are green


def test_latency_and_tokens_before_and_after(report):
    _, page = report
    section = page[page.index('id="latency"'):page.index('id="training"')]
    assert section.count("<svg") == 2  # latency strips + token histogram
    assert section.count('<g class="strip tone-a">') == 1 and section.count('<g class="strip tone-b">') == 1
    assert "tokens/s" in section and "mini/latency_p50" in section and "mini/completion_tokens" in section


def test_cost_side_by_side_tokens_latency_and_training_time(report, recorded):
    from harness.evals import load_results

    _, page = report
    table = page[page.index('id="cost"'):]
    table = table[:table.index("</table>")]
    rows = {r.split("</td>")[0].split(">")[-1]: r for r in table.split("<tr>")[2:]}
    assert set(rows) == {"baseline", "candidate"}
    cand = load_results(recorded["root"] / "cand")["mini"].metrics
    assert f"{cand['mini/prompt_tokens']['value']:.1f} / {cand['mini/completion_tokens']['value']:.1f}" in rows["candidate"]
    assert ">4<" in rows["candidate"] and ">4<" not in rows["baseline"]  # train_time_s 4.2, candidate only


def test_training_curves_and_chosen_checkpoint(report):
    _, page = report
    section = page[page.index('id="training"'):page.index('id="data"')]
    assert '<g class="series tone-a">' in section and '<g class="series tone-b">' in section
    polylines = re.findall(r'<polyline points="([^"]+)"', section)
    assert len(polylines) == 2 and len(polylines[0].split()) == 12 and len(polylines[1].split()) == 3
    assert "chosen: checkpoint-8" in section and section.count('class="mark ckpt"') == 2
    assert "best mini/pass_rate on 18 validation cases" in section


def test_data_report_summary_and_findings(report):
    _, page = report
    section = page[page.index('id="data"'):page.index('id="flips"')]
    assert "test data: the address is a fixture" in section  # the recorded override reason
    assert "1 blocking" in section and "leakage scope" in section and "pii" in section
    assert "jane.doe@acme-corp.io" not in section  # findings show PII masked, as recorded


def test_flipped_examples_side_by_side_with_differences(report):
    _, page = report
    section = page[page.index('id="flips"'):]
    cards = re.findall(r'<article class="flip dir-(\w+)"[^>]*data-suite="mini"', section)
    assert sorted(cards) == ["improved", "improved", "regressed"]
    assert cards[0] == "regressed"  # regressions first
    assert "Question 3: describe item number 21 briefly." in section  # the case input, from the suite file
    assert "<ins>" in section and "<del>" in section
    m01 = section[section.index("m-01"):]
    m01 = m01[:m01.index("</article>")]
    assert "<ins>, but not JSON</ins>" in m01 and "not JSON: Expecting value" in m01
    filters = re.search(r'<form id="flip-filters"[^>]*hidden>', section)
    assert filters, "filters are hidden until the script shows them (the page works with scripts off)"
    assert "data-checks='[&#34;contains&#34;, &#34;json_valid&#34;]'" in section or \
        """data-checks='["contains", "json_valid"]'""" in section


def test_model_output_with_markup_is_text_never_markup(report):
    _, page = report
    assert html.escape(XSS, quote=False) in page or html.escape(XSS) in page
    assert "<script>alert" not in page and "<img" not in page
    tags = parse(page)
    assert not [t for t, _ in tags.tags if t == "img"]
    handlers = [(t, a) for t, attrs in tags.tags for a in attrs if a.lower().startswith("on")]
    assert handlers == []
    scripts = [attrs for t, attrs in tags.tags if t == "script"]
    assert len(scripts) == 1 and "src" not in scripts[0]


def test_self_contained_with_a_strict_content_security_policy(report):
    _, page = report
    tags = parse(page)
    assert not [t for t, _ in tags.tags if t in ("link", "iframe", "object", "embed")]
    for _, attrs in tags.tags:
        for k in ("src", "href"):
            v = attrs.get(k)
            assert v is None or v.startswith("#"), f"external reference {k}={v!r}"
    [meta] = [a for t, a in tags.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    csp = meta["content"]
    assert "default-src 'none'" in csp
    [script] = tags.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp  # only this exact inline script may run


def test_report_finds_the_run_folder_under_harness_home(recorded, tmp_path, monkeypatch):
    from harness.registry import Registry
    from harness.report import write_run_report

    monkeypatch.setenv("HARNESS_HOME", str(recorded["home"]))
    with Registry(recorded["registry"]) as reg:
        page = write_run_report(recorded["run_id"], registry=reg, out_dir=tmp_path).read_text()
    assert "chosen: checkpoint-8" in page and "Not everything could be read" not in page


def test_partial_run_renders_what_was_recorded(tmp_path, monkeypatch):
    from harness.registry import Registry
    from harness.report import write_run_report

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    with Registry(tmp_path / "home" / "registry.db") as reg:
        run_id = reg.create_run({"name": "broken"}, name="broken")
        reg.update_run(run_id, status="failed", stage="train", error="CUDA out of memory <oops>")
        page = write_run_report(run_id, registry=reg, out_dir=tmp_path / "r").read_text()
    assert "No gate decision" in page and "No training stage was recorded" in page
    assert "no run folder with state.json" in page and "CUDA out of memory &lt;oops&gt;" in page


def test_results_changed_after_recording_are_flagged(recorded, tmp_path, monkeypatch):
    from harness.evals import load_results
    from harness.registry import Registry
    from harness.report import write_run_report

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    shutil.copytree(recorded["root"] / "cand", tmp_path / "cand")
    r = load_results(tmp_path / "cand")["mini"]
    with Registry(tmp_path / "home" / "registry.db") as reg:
        run_id = reg.create_run({"name": "edited"})
        reg.record_eval(run_id, role="candidate", suite="mini", suite_hash=r.suite_hash, metrics={}, results_path=str(r.path),
                        results_hash=r.summary["results_sha256"], model_fingerprint=r.model_fingerprint, adapter_hash=None)
        rows = (r.path / "results.jsonl").read_text().replace('"passed": false', '"passed": true')
        (r.path / "results.jsonl").write_text(rows)
        page = write_run_report(run_id, registry=reg, out_dir=tmp_path / "r").read_text()
    assert "changed since they were recorded" in page


def test_unknown_run_is_a_clear_error(recorded, tmp_path):
    from harness.registry import NotFound, Registry
    from harness.report import write_run_report

    with Registry(recorded["registry"]) as reg, pytest.raises(NotFound, match="no run 'run-nope'"):
        write_run_report("run-nope", registry=reg, out_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def harness(*args, home: Path):
    import os

    env = dict(os.environ, HARNESS_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env)


def test_cli_writes_the_run_report(recorded, tmp_path):
    p = harness("report", recorded["run_id"], "--out", str(tmp_path / "out"), home=recorded["home"])
    assert p.returncode == 0, p.stderr
    path = Path(p.stdout.strip())
    assert path == tmp_path / "out" / f"{recorded['run_id']}.html" and "Gate failed" in path.read_text()


def test_cli_user_errors_exit_2_without_traceback(recorded, tmp_path):
    for args in ([], [recorded["run_id"], "--channel", "production"], ["run-missing"], ["--channel", "nowhere"]):
        p = harness("report", *args, "--out", str(tmp_path), home=recorded["home"])
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert p.stderr.startswith("error:") and "Traceback" not in p.stderr
    empty = tmp_path / "empty-home"
    p = harness("report", "run-x", "--out", str(tmp_path), home=empty)
    assert p.returncode == 2 and "no registry" in p.stderr


def test_comparison_is_recomputed_from_results_when_the_file_is_missing(recorded, tmp_path):
    from harness.registry import Registry
    from harness.report import write_run_report

    folder = tmp_path / recorded["run_id"]
    shutil.copytree(recorded["folder"], folder)
    (folder / "comparison.json").unlink()
    state = json.loads((folder / "state.json").read_text())
    del state["done"]["gate"]["comparison"]
    (folder / "state.json").write_text(json.dumps(state))
    with Registry(recorded["registry"]) as reg:
        page = write_run_report(recorded["run_id"], registry=reg, out_dir=tmp_path / "r", run_dir=folder).read_text()
    assert "computed from the results files" in page and '<line class="ci"' in page
