"""Votes to DPO pairs: ties, both-bad and disputed cases left out, provenance kept, the file
passes `harness data check --format dpo` and trains with the DPO method on the tiny model."""

from __future__ import annotations

import json

import pytest

from harness.review import record_vote


def cast(reg, run_id, votes: dict[str, list[tuple[str, str]]]) -> None:
    for case_id, picks in votes.items():
        for reviewer, choice in picks:
            record_vote(reg, run_id, suite="mini", case_id=case_id, reviewer=reviewer, choice=choice, candidate_side="A")


VOTES = {
    "m-00": [("ann", "candidate")],
    "m-01": [("ann", "baseline")],
    "m-02": [("ann", "candidate"), ("bob", "candidate")],  # the XSS output wins: still just text in the pair
    "m-03": [("ann", "tie")],
    "m-04": [("ann", "both_bad")],
    "m-05": [("ann", "candidate")],  # the same text on both sides
    "m-06": [("ann", "candidate"), ("bob", "baseline")],  # disputed
    "m-07": [("ann", "baseline"), ("bob", "baseline"), ("cy", "tie")],  # 2 of 3
    "m-08": [("ann", "candidate")],
    "m-09": [("ann", "baseline")],
}


@pytest.fixture
def exported(run, reg, tmp_path):
    from harness.review import export_pairs

    cast(reg, run["run_id"], VOTES)
    info = export_pairs(run["run_id"], reg, tmp_path / "pairs.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    return info, rows, tmp_path / "pairs.jsonl"


def test_export_keeps_clear_preferences_with_provenance(exported, run):
    info, rows, _ = exported
    assert [r["provenance"]["case_id"] for r in rows] == ["m-00", "m-01", "m-02", "m-07", "m-08", "m-09"]
    assert info == {"path": info["path"], "pairs": 6, "no_clear_preference": 3, "identical_outputs": 1}
    out = run["outputs"]
    by = {r["provenance"]["case_id"]: r for r in rows}
    assert (by["m-00"]["chosen"], by["m-00"]["rejected"]) == (out["candidate"]["m-00"], out["baseline"]["m-00"])
    assert (by["m-01"]["chosen"], by["m-01"]["rejected"]) == (out["baseline"]["m-01"], out["candidate"]["m-01"])
    assert by["m-00"]["prompt"] == [{"role": "system", "content": "Reply with JSON."},
                                    {"role": "user", "content": "Question 0: describe item number 0 briefly."}]
    prov = by["m-07"]["provenance"]
    assert prov["run_id"] == run["run_id"] and prov["suite"] == "mini" and prov["chosen_model"] == "baseline"
    assert [(v["reviewer"], v["choice"]) for v in prov["votes"]] == [("ann", "baseline"), ("bob", "baseline"), ("cy", "tie")]
    assert all(v["time"].endswith("Z") for v in prov["votes"])
    assert prov["candidate"]["adapter_hash"] == run["adapter_hash"] and prov["baseline"]["adapter_hash"] is None


def test_exported_pairs_pass_the_data_checks(exported):
    from harness.data import check_data

    _, rows, path = exported
    report = check_data(path, fmt="dpo")
    assert report.blocking == [], report.findings
    assert not [f for f in report.findings if f["check"] == "format"], report.findings
    assert report.to_dict()["summary"]["records"] == len(rows)


def test_export_with_no_clear_votes_says_what_to_do(run, reg, tmp_path):
    from harness.errors import HarnessError
    from harness.review import export_pairs

    cast(reg, run["run_id"], {"m-03": [("ann", "tie")]})
    with pytest.raises(HarnessError, match="no votes with a clear preference.*harness review serve"):
        export_pairs(run["run_id"], reg, tmp_path / "pairs.jsonl")
    assert not (tmp_path / "pairs.jsonl").exists()


def test_exported_pairs_train_with_the_dpo_method(exported, run, tmp_path):
    import torch

    from harness.train import train

    _, _, path = exported
    cfg = {"base_model": str(run["model_dir"]), "method": "dpo", "train_data": str(path), "output_dir": str(tmp_path / "dpo"),
           "max_steps": 3, "batch_size": 2, "learning_rate": 1e-2, "logging_steps": 1, "save_steps": 3, "max_length": 64}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model's matmuls are too small to share between threads
    try:
        result = train(cfg, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    losses = [h["loss"] for h in result.loss_history if "loss" in h]
    assert result.manifest["steps"] == 3 and len(losses) >= 3
    assert all(loss == loss for loss in losses)  # no NaN
    assert result.smoke["max_logit_diff"] > 1e-4


def test_cli_export_and_stats(run, reg, tmp_path, capsys):
    from harness.cli import main

    cast(reg, run["run_id"], VOTES)
    opt = ["--registry", str(run["registry"])]
    assert main(["review", "export", run["run_id"], "--format", "dpo", "--out", str(tmp_path / "p.jsonl"), *opt]) == 0
    out = capsys.readouterr().out
    assert "6 pairs written" in out and "3 no clear preference" in out
    assert main(["review", "stats", run["run_id"], *opt]) == 0
    out = capsys.readouterr().out
    assert "candidate win rate" in out and "kind=gen" in out and "Cohen" not in out and "Fleiss kappa" in out
    assert main(["review", "stats", run["run_id"], "--json", *opt]) == 0
    s = json.loads(capsys.readouterr().out)
    # per case: m-00 1, m-01 0, m-02 1, m-03 .5, m-05 1, m-06 .5, m-07 (0+0+.5)/3, m-08 1, m-09 0; m-04 both bad
    assert s["win_rate"]["n"] == 9
    assert s["win_rate"]["value"] == pytest.approx((1 + 0 + 1 + 0.5 + 1 + 0.5 + 0.5 / 3 + 1 + 0) / 9)
    assert s["agreement"]["cases"] == 3 and s["agreement"]["method"] == "fleiss"
    assert main(["review", "stats", "run-nope", *opt]) == 2
    assert "error: no run 'run-nope'" in capsys.readouterr().err


def test_human_comparison_joins_the_gate(run, reg):
    from harness.gates import Comparison, Policy, decide
    from harness.review import add_human_metric, human_comparison

    assert human_comparison(run["run_id"], reg) is None
    cast(reg, run["run_id"], {f"m-{i:02d}": [("ann", "candidate")] for i in range(10)})
    metric, slices = human_comparison(run["run_id"], reg)
    assert metric.metric == "human/win_rate" and metric.candidate == 1.0 and metric.n == 10
    assert set(slices) == {"kind=gen", "difficulty=easy", "difficulty=hard"}
    comparison = Comparison(suites=["mini"], metrics={}, slices={}, baseline={}, candidate={})
    assert add_human_metric(comparison, run["run_id"], reg)
    policy = Policy.model_validate({"rules": [{"metric": "human/win_rate", "min": 0.6, "must_improve": True},
                                              {"metric": "human/win_rate", "slices": ["difficulty"], "min": 0.9, "min_n": 4}]})
    d = decide(comparison, policy)
    assert d.passed, d.to_markdown()
    assert {(r.test, r.slice) for r in d.rules} == {("min", None), ("must_improve", None),
                                                    ("min", "difficulty=easy"), ("min", "difficulty=hard")}
