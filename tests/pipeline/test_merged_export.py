"""`harness export CHANNEL --format merged`: the merge-fidelity check on the gate's cases decides
whether the merged model is written, and is recorded where `harness show` and the report read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from tests.pipeline.test_pipeline import write_run


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_merged_export_is_written_after_its_fidelity_check_and_refused_below_the_threshold(tiny_model_dir, tmp_path, home,
                                                                                           capsys):
    from harness.models import HFBackend
    from harness.pipeline import run
    from harness.registry import Registry

    import yaml

    # evaluated in fp32: a bf16 merge of a random tiny model flips near-ties on most of its
    # outputs (every token is one), so the check's mechanism is tested where the merge is near-exact
    path = write_run(tmp_path, tiny_model_dir)
    cfg = yaml.safe_load(path.read_text())
    cfg["eval"]["dtype"] = "float32"
    path.write_text(yaml.safe_dump(cfg))
    reg = Registry(home / "registry.db")
    s = run(path, reg)
    assert s["promoted"] is True
    opt = ["--registry", str(reg.path)]

    # an impossible threshold: refused, exit 1, nothing written, the check recorded
    refused = tmp_path / "refused"
    assert main(["export", "production", "--format", "merged", "--out", str(refused), "--min-identical", "1.01", *opt]) == 1
    err = capsys.readouterr().err
    assert "merged export of 'production' refused, nothing written" in err and "outputs token-identical" in err
    assert not refused.exists()

    out = tmp_path / "merged"
    assert main(["export", "production", "--format", "merged", "--out", str(out), "--min-identical", "0.9",
                 "--max-delta", "0.1", "--json", *opt]) == 0
    entry = json.loads(capsys.readouterr().out)
    f = entry["fidelity"]
    assert entry["passed"] is True and entry["path"] == str(out.resolve())
    assert f["generated"] > 0 and f["identical"] <= f["generated"] and f["choices"] > 0  # the mini suite's MC cases
    assert sorted(p.name for p in out.glob("*.safetensors")) and not list(out.glob("*.bin"))
    assert not (out / "adapter_config.json").exists()  # a plain model, not an adapter
    # the merged folder loads as a model of its own and answers as base + adapter does on a prompt
    merged, adapted = HFBackend.from_spec(str(out), dtype="float32"), HFBackend.from_spec(str(tiny_model_dir), dtype="float32")
    adapted.load_adapter(s["adapter"])
    msgs = [[{"role": "user", "content": "Describe thing number 3 of the inventory."}]]
    from harness.models import GenerationConfig

    cfg = GenerationConfig(max_new_tokens=12)
    assert merged.generate(msgs, cfg)[0].text == adapted.generate(msgs, cfg)[0].text

    shown = reg.show(s["run_id"])["exports"]
    assert [x["passed"] for x in shown] == [False, True]
    assert main(["show", s["run_id"], *opt]) == 0
    text = capsys.readouterr().out
    assert "export    merged of production REFUSED" in text and f"written to {out.resolve()}" in text
    page = Path(reg.get_run(s["run_id"])["report_path"]).read_text()
    assert 'id="exports"' in page and "refused" in page and str(out.resolve()) in page
