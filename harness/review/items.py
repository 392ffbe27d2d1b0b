"""What a review shows: per case of a run, the prompt and the baseline's and candidate's outputs.

Outputs come from the results the run recorded: the registry's `evals` rows (one
`results_path` per role and suite), else the run folder's `state.json` (`done.baseline.results`,
`done.candidate.results`). Prompts are rebuilt from the suite folder (the run config's `suites`,
or `--suite PATH`) and must hash to the `prompt_sha` saved beside each output: a suite edited
since the run was evaluated is refused rather than shown with the wrong question.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.evals.runner import prompt_hash
from harness.paths import run_folder

ROLES = ("baseline", "candidate")


@dataclass(frozen=True)
class Pair:
    """One case's two outputs (no prompt): enough for win rates per slice."""

    suite: str
    case_id: str
    baseline: str
    candidate: str
    slices: dict
    prompt_sha: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.suite, self.case_id)


@dataclass(frozen=True)
class ReviewItem:
    """One case as a reviewer judges it: the chat prompt and both outputs."""

    pair: Pair
    messages: list[dict]

    @property
    def key(self) -> tuple[str, str]:
        return self.pair.key


@dataclass
class Pairs:
    run_id: str
    pairs: list[Pair]
    identity: dict = field(default_factory=dict)  # role -> {model, model_fingerprint, adapter_hash}
    sources: dict = field(default_factory=dict)  # role -> {suite: results folder}
    skipped: int = 0  # cases without an output on one side (e.g. log-likelihood-only cases)

    def by_key(self) -> dict[tuple[str, str], Pair]:
        return {p.key: p for p in self.pairs}


def require_run(run_id: str, registry) -> dict:
    run = registry.get_run(run_id)
    if run is None:
        from harness.registry import NotFound

        raise NotFound(f"no run {run_id!r} in {registry.path} (`harness runs` lists them)")
    return run


def results_sources(run_id: str, registry, run_dir: str | Path | None = None) -> dict[str, dict[str, Path]]:
    """role -> {suite: results folder} for the run's baseline and candidate."""
    from harness.evals.results import load_results

    require_run(run_id, registry)
    out: dict[str, dict[str, Path]] = {role: {} for role in ROLES}
    for role in ROLES:
        for row in registry.evals(run_id, role=role):
            if row.get("results_path"):
                out[role][row["suite"]] = Path(row["results_path"])
    if all(out.values()):
        return out
    folder = run_folder(run_id, registry.path, run_dir)
    if folder is not None:
        from harness.pipeline.records import Records

        records = Records.load(json.loads((folder / "state.json").read_text()).get("done"))
        for role in ROLES:
            rec = records.get(role)
            if rec and rec.results and not out[role]:
                out[role] = {name: r.path for name, r in load_results(rec.results).items()}
    missing = [role for role in ROLES if not out[role]]
    if missing:
        raise HarnessError(
            f"run {run_id} has no recorded {' or '.join(missing)} results (neither registry evals rows nor "
            f"a run folder with state.json): review a run once both evals have finished"
        )
    return out


def suite_name(suite: str | None) -> str | None:
    """A suite given by name stays a name; a suite folder gives the name in its suite.yaml."""
    if suite is None or not (Path(suite) / "suite.yaml").is_file():
        return suite
    from harness.errors import ConfigError
    from harness.files import load_mapping

    try:
        return str(load_mapping(Path(suite) / "suite.yaml", "a suite spec")["name"])
    except (ConfigError, KeyError):
        raise HarnessError(f"{suite}/suite.yaml: no readable suite name (run `harness suites validate {suite}`)") from None


def load_pairs(run_id: str, registry, suite: str | None = None, run_dir: str | Path | None = None) -> Pairs:
    """Every case of the run with a generated output on both sides (optionally one suite, by name or folder)."""
    from harness.evals.results import read_suite_result

    suite = suite_name(suite)
    sources = results_sources(run_id, registry, run_dir)
    names = [s for s in sources["baseline"] if s in sources["candidate"]]
    if suite is not None:
        if suite not in names:
            raise HarnessError(f"run {run_id} has no suite {suite!r} evaluated on both sides; it has: {', '.join(names) or 'none'}")
        names = [suite]
    if not names:
        raise HarnessError(f"run {run_id}: the baseline and candidate share no suite "
                           f"(baseline {sorted(sources['baseline'])}, candidate {sorted(sources['candidate'])})")
    result = Pairs(run_id, [], sources={role: {n: sources[role][n] for n in names} for role in ROLES})
    for name in names:
        base = read_suite_result(sources["baseline"][name])
        cand = read_suite_result(sources["candidate"][name])
        if base.suite_hash != cand.suite_hash:
            raise HarnessError(f"suite {name!r}: baseline and candidate were evaluated on different suite versions "
                               f"({base.suite_hash[:12]} vs {cand.suite_hash[:12]}): their outputs answer different cases")
        for role, r in (("baseline", base), ("candidate", cand)):
            result.identity.setdefault(role, {"model": r.model, "model_fingerprint": r.model_fingerprint,
                                              "adapter_hash": r.adapter_hash})
        cand_out = {o["case_id"]: o for o in cand.outputs}
        for o in base.outputs:
            c = cand_out.get(o["case_id"])
            if c is None or o.get("output") is None or c.get("output") is None:
                result.skipped += 1
                continue
            result.pairs.append(Pair(name, o["case_id"], o["output"], c["output"], dict(c.get("slices") or {}),
                                     o.get("prompt_sha")))
    return result


def _suite_folders(run_id: str, registry, suite: str | None) -> list[Path]:
    if suite is not None and (Path(suite) / "suite.yaml").is_file():
        return [Path(suite)]
    config = require_run(run_id, registry)["config"] or {}
    return [Path(p) for p in config.get("suites") or [] if (Path(p) / "suite.yaml").is_file()]


def load_items(run_id: str, registry, suite: str | None = None, run_dir: str | Path | None = None) -> tuple[Pairs, list[ReviewItem]]:
    """The pairs plus each case's prompt, checked against the prompt the outputs answered.

    suite: a suite name (one of the run's) or a suite folder (needed when the run's config does
    not name its suite folders, or they moved).
    """
    from harness.evals.suite import load_suite

    pairs = load_pairs(run_id, registry, suite, run_dir)
    names = {p.suite for p in pairs.pairs}
    folders = [f for f in _suite_folders(run_id, registry, suite) if suite_name(str(f)) in names]
    loaded = {s.name: s for s in map(load_suite, folders)}
    cases = {name: {c.id: c for c in s.cases} for name, s in loaded.items()}
    items, stale = [], []
    for p in pairs.pairs:
        s = loaded.get(p.suite)
        if s is None:
            raise HarnessError(f"run {run_id}: cannot find the folder of suite {p.suite!r} to show its prompts: "
                               f"pass --suite PATH/TO/{p.suite}")
        case = cases[p.suite].get(p.case_id)
        messages = s.messages(case) if case is not None else None
        if messages is None or (p.prompt_sha and prompt_hash(messages) != p.prompt_sha):
            stale.append(f"{p.suite}/{p.case_id}")
            continue
        items.append(ReviewItem(p, messages))
    if stale:
        raise HarnessError(f"{len(stale)} case(s) of run {run_id} no longer match their suite's prompts "
                           f"({', '.join(stale[:5])}{' ...' if len(stale) > 5 else ''}): the suite changed since the run "
                           "was evaluated; pass --suite with the folder as it was then")
    if not items:
        raise HarnessError(f"run {run_id}: no case has generated outputs on both sides to review")
    return pairs, items
