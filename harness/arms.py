"""Is fine-tuning needed at all? Arms that answer with the base model and a better prompt.

- `prompted`: k few-shot examples from the training data (a fixed, seeded selection) placed in
  the chat before each case.
- `retrieval`: the k training examples nearest to each case (BM25 over the user text).

Training examples that leak into any eval case are never used as shots (the data checks'
leakage finder decides). Arms go through the same suites, cache and paired comparison as the
candidate; the gate rule `beats_arm` asks the candidate to be at least as good.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

ARMS = ("prompted", "retrieval")


@dataclass(frozen=True)
class Example:
    line: int
    user: str
    assistant: str

    def turns(self) -> list[dict]:
        return [{"role": "user", "content": self.user}, {"role": "assistant", "content": self.assistant}]


def usable_examples(train_path: str | Path, suites) -> tuple[list[Example], list[int]]:
    """(examples that may serve as shots, lines excluded because they leak into a suite)."""
    from harness.data import find_leaks, read_records
    from harness.data.leakage import suite_references

    records = [r for r in read_records(train_path) if r.ok and r.kind in ("chat", "prompt_completion") and r.answer]
    leaks = find_leaks([r.prompt for r in records], suite_references(suites))
    leaked = {records[l.record].line for l in leaks}
    examples = [Example(r.line, r.prompt, r.answer) for r in records if r.line not in leaked]
    if not examples:
        raise HarnessError(f"{train_path}: no usable few-shot examples (every record leaks or is malformed)")
    return examples, sorted(leaked)


def fixed_shots(examples: list[Example], k: int, seed: int = 0) -> list[Example]:
    """The same k examples for every case and every run with this seed."""
    return random.Random(seed).sample(examples, min(k, len(examples)))


class Retriever:
    """BM25 over the training examples' user text."""

    def __init__(self, examples: list[Example]):
        from rank_bm25 import BM25Okapi

        self.examples = examples
        self.bm25 = BM25Okapi([self._tokens(e.user) for e in examples])

    @staticmethod
    def _tokens(text: str) -> list[str]:
        return re.findall(r"\w+", text.lower()) or ["_"]

    def nearest(self, text: str, k: int) -> list[Example]:
        scores = self.bm25.get_scores(self._tokens(text))
        # ties broken by line number so the choice is deterministic
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], self.examples[i].line))[:k]
        return [self.examples[i] for i in reversed(order)]  # nearest last, closest to the question


def shots_fn(arm: str, train_path: str | Path, suites, k: int, seed: int = 0):
    """A function case -> few-shot chat turns for the arm, plus what was excluded."""
    from harness.data.leakage import case_text

    examples, leaked = usable_examples(train_path, suites)
    if arm == "prompted":
        chosen = fixed_shots(examples, k, seed)
        turns = [t for e in chosen for t in e.turns()]

        def fn(case):
            return list(turns)

        info = {"arm": arm, "shots": [e.line for e in chosen], "excluded_leaks": leaked}
    elif arm == "retrieval":
        retriever = Retriever(examples)

        def fn(case):
            return [t for e in retriever.nearest(case_text(case.input), k) for t in e.turns()]

        info = {"arm": arm, "k": k, "pool": len(examples), "excluded_leaks": leaked}
    else:
        raise HarnessError(f"unknown arm {arm!r}: use one of {', '.join(ARMS)}")
    return fn, info


def arm_out_dir(fingerprint: str, arm: str, train_path: str | Path, k: int, seed: int, max_cases: int | None = None,
                identity: dict | None = None) -> Path:
    from harness.evals.api import identity_tag
    from harness.paths import harness_home

    data = hashlib.sha256(Path(train_path).read_bytes()).hexdigest()[:10]
    sample = f"-n{max_cases}" if max_cases else ""
    tag = f"@{identity_tag(identity)}" if identity else ""
    return harness_home() / "results" / f"{fingerprint[:12]}-{arm}-k{k}-s{seed}-{data}{sample}{tag}"


def run_arm(arm: str, suite_paths, model: str, train_path, *, k: int = 4, seed: int = 0, backend=None, out=None,
            batch_size=None, latency_n=None, max_cases: int | None = None, dtype: str = "auto", device: str = "auto",
            engine: str = "auto", invariance_n: int | None = None):
    """Evaluate one arm on the suites; results land beside the other results, keyed by data and k."""
    from harness.evals import load_suites, run_eval

    suites = load_suites(suite_paths)
    fn, info = shots_fn(arm, train_path, suites, k, seed)
    if backend is None:
        from harness.models import HFBackend

        backend = HFBackend.from_spec(model, dtype=dtype, device=device, engine=engine)
    backend.set_adapter(None) if backend.adapters else None
    out = Path(out) if out else arm_out_dir(backend.fingerprint, arm, train_path, k, seed, max_cases, backend.identity)
    # how the arm's prompts were made, beside the outputs (each output row holds its exact chat)
    record = {**info, "train_data": str(train_path), "train_sha256": hashlib.sha256(Path(train_path).read_bytes()).hexdigest(),
              "seed": seed, "k": k}
    results, out = run_eval(suite_paths, model, out=out, backend=backend, arm=arm, shots=fn, batch_size=batch_size,
                            latency_n=latency_n, max_cases=max_cases, invariance_n=invariance_n, extra_summary={"arm_info": record})
    return results, out, info


def run_arms(ctx) -> dict:
    """The run's `arms` stage (ctx: its `RunContext`): every configured arm, with the run's training data."""
    cfg = ctx.cfg
    out = {"results": {}, "info": {}}
    suites = cfg.suites
    if cfg.arm_suites is not None:
        from harness.evals import load_suites

        suites = [str(s.path) for s in load_suites(cfg.suites) if s.name in cfg.arm_suites]
    for arm in cfg.arms:
        ctx.say(f"arm {arm}: base model + {cfg.shots} shots from {Path(ctx.train_cfg.train_data).name}")
        _, path, info = run_arm(arm, suites, cfg.base_model, ctx.train_cfg.train_data, k=cfg.shots,
                                seed=ctx.train_cfg.seed, backend=ctx.backend(), batch_size=cfg.eval.batch_size,
                                latency_n=cfg.eval.latency_sample, max_cases=cfg.eval.max_cases,
                                invariance_n=cfg.eval.invariance_sample)
        out["results"][arm] = str(path)
        out["info"][arm] = info
    return out
