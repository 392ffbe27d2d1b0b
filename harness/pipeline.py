"""`harness run`: one training run wrapped in evidence, stage by stage.

data checks -> baseline eval (cached) -> gate plan (which rules the cases can decide) -> train ->
adapter smoke test -> store adapter -> (checkpoint selection) -> candidate eval (whole, or
sequential: in chunks until the gate's verdict is settled) -> paired comparison + gate ->
registry record -> HTML report -> promotion, only if the gate passed.

Every stage is recorded in the registry and in `$HARNESS_HOME/runs/<run>/state.json`; a crash
or Ctrl-C marks the run `failed` / `interrupted` (never promoted) and `harness run --resume RUN`
continues after the last finished stage (training resumes from its last checkpoint).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.console import console
from harness.errors import HarnessError
from harness.paths import runs_root

STAGES = ("data_checks", "baseline", "plan", "train", "smoke_test", "store_adapter", "select_checkpoint", "candidate",
          "arms", "gate", "record", "report", "promote")


RUN_ID_RE = re.compile(r"run-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")


class RunFailed(HarnessError):
    """A stage of the wrapped run failed; the run is marked failed and never promoted."""


@dataclass
class RunState:
    run_id: str
    folder: Path
    config_path: str
    done: dict = field(default_factory=dict)  # stage -> its outputs

    def save(self) -> None:
        tmp = self.folder / "state.tmp"
        tmp.write_text(json.dumps({"run_id": self.run_id, "config_path": self.config_path, "done": self.done}, indent=1, default=str))
        os.replace(tmp, self.folder / "state.json")

    @classmethod
    def load(cls, run_id: str) -> RunState:
        if not RUN_ID_RE.fullmatch(run_id or ""):
            raise HarnessError(f"{run_id!r} is not a run id (like run-20260101-120000-a1b2c3): `harness runs` lists them")
        folder = runs_root() / run_id
        try:
            s = json.loads((folder / "state.json").read_text())
        except (OSError, ValueError):
            raise HarnessError(f"run {run_id!r} has no saved state in {folder}: check `harness runs`") from None
        return cls(s["run_id"], folder, s["config_path"], s["done"])


class Pipeline:
    def __init__(self, config_path: str | Path, registry=None, resume: RunState | None = None, strict: bool = False):
        from harness.registry import Registry
        from harness.runconfig import load_run_config

        self.cfg, self.train_cfg, _ = load_run_config(config_path)
        if strict:
            self.cfg.eval.plan = "strict"
        self.reg = registry or Registry()
        self.con = console()
        self._backend = None
        self._quantized = None  # the 4-bit base a QLoRA candidate runs on
        if resume:
            self.state = resume
        else:
            from harness.models import resolve

            run_id = self.reg.create_run(self.cfg.model_dump(mode="json", by_alias=True), kind="run", name=self.cfg.name,
                                         seeds={"train": self.train_cfg.seed})
            folder = runs_root() / run_id
            folder.mkdir(parents=True, exist_ok=True)
            self.state = RunState(run_id, folder, str(Path(config_path).resolve()))
            self.state.save()
            resolve(self.cfg.base_model)  # converts the embedded model once, before any stage
        # the run owns its training outputs (checkpoints make resume possible)
        self.train_cfg.output_dir = self.state.folder / "train"

    # ---- helpers -------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.state.run_id

    def backend(self):
        if self._backend is None:
            from harness.models import HFBackend

            from harness.train.methods import METHODS

            # adapters whose virtual tokens shift with padding run through generate(): the base
            # must run through it too, or baseline and candidate would not be comparable
            engine = "generate" if METHODS[self.train_cfg.method].prompt_learning else "auto"
            self._backend = HFBackend.from_spec(self.cfg.base_model, dtype=self.cfg.eval.dtype, device=self.cfg.eval.device,
                                                engine=engine)
        return self._backend

    def candidate_backend(self, folder: str | Path):
        """(backend, adapter name) of a trained artifact, run as it was trained: an adapter on the
        base; a QLoRA adapter on the base loaded in 4-bit NF4 (the model it trained on); a fully
        fine-tuned model as a model of its own (adapter name None)."""
        from harness.models import HFBackend
        from harness.train.methods import METHODS

        base = self.backend()  # the candidate runs in the baseline's dtype, device and engine: comparable
        same = {"dtype": base.dtype, "device": base.device, "engine": base.engine}
        if self.train_cfg.method == "full":
            return HFBackend.from_spec(str(folder), **same), None
        if METHODS[self.train_cfg.method].quantize_4bit:
            if self._quantized is None:
                self._quantized = HFBackend.from_spec(self.cfg.base_model, quantize="nf4", **same)
            be = self._quantized
        else:
            be = base
        return be, be.load_adapter(folder)

    def base_fingerprint(self) -> str:
        from harness.models import model_fingerprint, resolve

        return model_fingerprint(resolve(self.cfg.base_model).path)

    def say(self, msg: str) -> None:
        self.con.print(msg)

    # ---- the run -------------------------------------------------------------------------
    def run(self) -> dict:
        todo = [s for s in STAGES if s not in self.state.done]
        if len(todo) < len(STAGES):
            self.say(f"[bold]resuming {self.run_id}[/bold] after {list(self.state.done)[-1]}")
        from harness.registry.lifecycle import RunLease

        lease = RunLease(self.reg, self.run_id, self.state.folder).acquire()  # refused while another process runs it
        restore = _terminate_as_interrupt()
        try:
            for i, stage in enumerate(STAGES, 1):
                if stage in self.state.done:
                    continue
                self.say(f"\n[bold cyan][{i}/{len(STAGES)}] {stage.replace('_', ' ')}[/bold cyan]")
                self.reg.update_run(self.run_id, stage=stage)
                t0 = time.perf_counter()
                out = getattr(self, f"stage_{stage}")() or {}
                out["seconds"] = round(time.perf_counter() - t0, 2)
                self.state.done[stage] = out
                self.state.save()
        except KeyboardInterrupt as e:
            why = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted by the user"
            self.reg.update_run(self.run_id, status="interrupted", error=why)
            raise HarnessError(f"run {self.run_id} interrupted ({why}): continue with `harness run --resume {self.run_id}`") from None
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            self.reg.update_run(self.run_id, status="failed", error=msg)
            if isinstance(e, HarnessError):
                raise RunFailed(f"run {self.run_id} failed at stage {stage!r}: {e}") from None
            raise
        finally:
            restore()
            lease.release()
        if self.reg.get_run(self.run_id)["status"] != "finished":  # a promotion finished it in its own transaction
            self.reg.update_run(self.run_id, status="finished", stage="done")
        if self.state.done.get("report", {}).get("report"):
            # written again now that the run is finished: the page shows its final status and promotion
            from harness.report import write_run_report

            write_run_report(self.run_id, registry=self.reg)
        return self.summary()

    # ---- stages --------------------------------------------------------------------------
    def stage_data_checks(self):
        from harness.data import check_data, data_hash

        dc = self.cfg.data_checks
        results = {}
        for key in ("train_data", "validation_data"):
            path = getattr(self.train_cfg, key, None)
            if not path:
                continue
            report = None
            if dc.enabled:
                report = check_data(path, suites=self.cfg.suites, schema=dc.schema_path)
                report.render(self.con)  # stderr: stdout stays for --json
            h = data_hash(path)
            with open(path, "rb") as f:
                rows = sum(1 for line in f if line.strip())
            self.reg.register_dataset(str(path), h, rows, report=report.to_dict() if report else None)
            blocking = [f["message"] for f in (report.blocking if report else [])]
            results[key] = {"path": str(path), "hash": h, "rows": rows, "blocking": blocking,
                            "report": report.to_dict() if report else None}
            if blocking and dc.block and not dc.override_reason:
                raise RunFailed(f"data checks block the run ({len(blocking)} blocking findings in {path}: {blocking[0]}); "
                                "fix the data or set data_checks.override_reason")
        self.reg.update_run(self.run_id, dataset_hash=results.get("train_data", {}).get("hash"))
        if dc.override_reason:
            results["override_reason"] = dc.override_reason
        return results

    def stage_baseline(self):
        from harness.evals import default_out_dir, load_results, load_suites, run_eval

        fp = self.base_fingerprint()
        self.reg.register_base_model(self.cfg.base_model, fp)
        self.reg.update_run(self.run_id, base_fingerprint=fp)
        from harness.evals.runner import sample_cases

        from harness.evals.results import identity_differences

        n = self.cfg.eval.max_cases
        be = self.backend()
        be.set_adapter(None)
        identity = be.identity
        out = default_out_dir(fp, None, identity=identity)
        if n:  # a sampled baseline lives beside the full one, never over it
            out = out.with_name(f"{out.name}-n{n}")
        suites = [sample_cases(s, n) for s in load_suites(self.cfg.suites)]
        try:
            cached = load_results(out)
        except HarnessError:
            cached = {}
        ok = all(s.name in cached and cached[s.name].suite_hash == s.hash
                 and cached[s.name].generation == _generation_key(s)
                 and not identity_differences(cached[s.name].identity, identity)
                 and {o["case_id"] for o in cached[s.name].outputs} == {c.id for c in s.cases} for s in suites)
        if ok:
            self.say(f"baseline: reused cached results for {', '.join(s.name for s in suites)} "
                     f"(fingerprint {fp[:12]}, {identity['dtype']} on {identity['device']}, suite hashes unchanged) from {out}")
            return {"results": str(out), "cached": True}
        # latency is timed with the candidate, both models in one process (stage candidate)
        run_eval(self.cfg.suites, self.cfg.base_model, out=out, backend=be, batch_size=self.cfg.eval.batch_size,
                 latency_n=0, max_cases=n, invariance_n=self.cfg.eval.invariance_sample)
        return {"results": str(out), "cached": False}

    def _gate_suites(self):
        """The run's suites as the gate will score them: sampled to max_cases, without the cases
        a checkpoint is selected on."""
        from harness.evals import load_suites
        from harness.evals.runner import sample_cases, selection_split

        suites = [sample_cases(s, self.cfg.eval.max_cases) for s in load_suites(self.cfg.suites)]
        sel = self.cfg.checkpoint_selection
        for s in suites:
            if sel.enabled and sel.on == "suite" and s.name == sel.suite:
                held = {c.id for c in selection_split(s, sel.max_cases)}
                s.cases = [c for c in s.cases if c.id not in held]
        return suites

    def stage_plan(self):
        """Which rules the run's cases can decide, from the baseline's rates, before training."""
        if self.cfg.eval.plan == "off":
            return {"plan": None}
        from harness.evals import load_results
        from harness.gates import load_policy
        from harness.gates.api import render_plan
        from harness.gates.plan import plan

        where = self.state.done["baseline"]["results"]
        gp = plan(load_policy(self.cfg.policy), self._gate_suites(), load_results(where), baseline_from=where,
                  looks=self.cfg.eval.looks if self.cfg.eval.sequential else None)
        path = self.state.folder / "plan.json"
        path.write_text(json.dumps(gp.to_dict(), indent=1, default=str))
        render_plan(gp, self.con)
        bad = [r.label for r in gp.undecidable]
        if bad and self.cfg.eval.plan == "strict":
            raise RunFailed(f"{len(bad)} blocking rule(s) cannot be decided with the run's cases ({', '.join(bad[:4])}"
                            f"{' ...' if len(bad) > 4 else ''}): not training (eval.plan: strict). Grow the suites, widen "
                            f"those margins, or see `harness gate plan`; {path}")
        return {"plan": str(path), "undecidable": bad}

    def stage_train(self):
        from harness.train import train

        resume = (Path(self.train_cfg.output_dir)).exists() and any(Path(self.train_cfg.output_dir).glob("checkpoint-*"))
        result = train(self.train_cfg, resume=resume)
        return {"output_dir": str(result.output_dir), "checkpoints": [str(c) for c in result.checkpoints],
                "manifest": result.manifest, "method": result.method}

    def stage_smoke_test(self):
        # train() ran it on the saved adapter, loaded as the evals load it, and fails on an adapter
        # without effect: its numbers are in the manifest, so the base is not loaded again for it
        report = self.state.done["train"]["manifest"]["smoke_test"]
        self.say(f"adapter changes the model: {report}")
        return {"report": report}

    def _store(self, folder: str | Path) -> str:
        """Store an adapter's files; the training manifest (wall time, losses) stays in the
        registry's run record, so the adapter's identity is its weights and config alone."""
        import shutil
        import tempfile

        t = self.state.done["train"]
        with tempfile.TemporaryDirectory(dir=self.state.folder) as tmp:
            for f in adapter_files(folder):
                shutil.copy2(f, Path(tmp) / f.name)
            return self.reg.add_adapter(tmp, method=t["method"], base_fingerprint=self.base_fingerprint(), run_id=self.run_id)

    def stage_store_adapter(self):
        h = self._store(self.state.done["train"]["output_dir"])
        self.reg.update_run(self.run_id, adapter_hash=h, train_manifest=self.state.done["train"]["manifest"])
        path = self.reg.adapter_path(h)
        self.say(f"adapter stored: {h[:16]} at {path}")
        return {"adapter_hash": h, "path": str(path)}

    def stage_select_checkpoint(self):
        """Keep the best checkpoint, judged on cases the gate never scores: the validation loss
        at each checkpoint, or a fixed split of a suite that the gate then leaves out."""
        sel = self.cfg.checkpoint_selection
        ckpts = self.state.done["train"]["checkpoints"]
        final = self.state.done["store_adapter"]["path"]
        if not sel.enabled or len(ckpts) < 2:
            return {"selected": "final", "why": "checkpoint selection disabled" if not sel.enabled else "one checkpoint"}
        if sel.on == "validation":
            return self._select_on_validation(ckpts, final)
        from harness.evals import evaluate_suite, load_suites
        from harness.evals.runner import selection_split

        suite = next((s for s in load_suites(self.cfg.suites) if s.name == sel.suite), None)
        if suite is None:
            raise RunFailed(f"checkpoint_selection.suite {sel.suite!r} is not one of the run's suites")
        suite.cases = selection_split(suite, sel.max_cases)
        scores = {}
        for path in ckpts + [final]:
            be, _ = self.candidate_backend(path)
            r = evaluate_suite(be, suite, latency_n=0, invariance_n=0)
            scores[path] = r.metrics[f"{suite.name}/{sel.metric}"]["value"]
            self.say(f"  {Path(path).name}: {sel.metric} = {scores[path]:.3f}")
            be.set_adapter(None)
        best = max(scores, key=lambda p: (scores[p], p == final))
        why = (f"best {sel.suite}/{sel.metric} on a selection split of {len(suite.cases)} {sel.suite} cases: "
               f"{scores[best]:.3f}; the gate leaves those cases out")
        return self._keep(best, final, {"selected": best, "why": why, "scores": scores, "on": "suite",
                                        "excluded": {sel.suite: [c.id for c in suite.cases]}})

    def _select_on_validation(self, ckpts: list[str], final: str) -> dict:
        hist = self.state.done["train"]["manifest"]["loss_history"]
        losses = {h["step"]: h["eval_loss"] for h in hist if "eval_loss" in h}
        steps = {p: int(Path(p).name.rsplit("-", 1)[1]) for p in ckpts}
        last = self.state.done["train"]["manifest"]["steps"]
        scores = {p: losses[steps[p]] for p in ckpts if steps[p] in losses and steps[p] != last}
        if last in losses:
            scores[final] = losses[last]
        if not scores:
            return {"selected": "final", "why": "no validation loss was logged at the checkpoints", "on": "validation"}
        best = min(scores, key=lambda p: (scores[p], p != final))
        n = self.state.done["train"]["manifest"].get("data_records", {}).get("validation")
        why = f"lowest validation loss ({n} records of train.validation_data, never gate cases): {scores[best]:.4f}"
        return self._keep(best, final, {"selected": best, "why": why, "scores": scores, "on": "validation"})

    def _keep(self, best: str, final: str, out: dict) -> dict:
        if best != final:
            h = self._store(best)
            self.state.done["store_adapter"] = {"adapter_hash": h, "path": str(self.reg.adapter_path(h)), "from_checkpoint": best}
            self.reg.update_run(self.run_id, adapter_hash=h)
        self.say(f"selected {'the final adapter' if best == final else Path(best).name}: {out['why']}")
        return out

    def stage_candidate(self):
        from harness.evals import run_eval

        adapter = self.reg.adapter_path(self.state.done["store_adapter"]["adapter_hash"])  # verified on load
        out = self.state.folder / "candidate"
        be, name = self.candidate_backend(adapter)
        label = self.cfg.base_model if name else str(adapter)
        seq = None
        if self.cfg.eval.sequential:
            seq = self._evaluate_sequentially(be, label, out)
        else:
            run_eval(self.cfg.suites, label, out=out, backend=be,
                     batch_size=self.cfg.eval.batch_size, latency_n=0, arm="candidate",
                     max_cases=self.cfg.eval.max_cases, invariance_n=self.cfg.eval.invariance_sample)
        timed = self._time_latency(be, name, out)
        be.set_adapter(None)
        return {"results": str(out), "baseline_timed": str(timed) if timed else None, "sequential": seq,
                "runs_on": "its own weights (full fine-tune)" if name is None else
                           "the 4-bit NF4 base it trained on" if be.quantize else "the base"}

    def _evaluate_sequentially(self, be, label: str, out: Path) -> dict:
        """The candidate in chunks of every suite (the suites' fixed hash order), the gate decided
        at each look's group-sequential boundary; stops once its verdict is settled. Earlier
        chunks come back from the completion cache, so each look generates only its own cases."""
        import copy

        from harness.evals import evaluate_suite, write_result
        from harness.evals.cache import CompletionCache
        from harness.evals.runner import _ranked
        from harness.gates import decide, load_policy
        from harness.gates.sequential import chunk_sizes, describe, plan_looks, settled

        policy = load_policy(self.cfg.policy)
        looks = plan_looks(self.cfg.eval.looks, policy.confidence)
        suites = self._gate_suites()
        order = {s.name: _ranked(s, s.cases) for s in suites}
        sizes = {s.name: chunk_sizes(len(s.cases), looks) for s in suites}
        totals = {s.name: len(s.cases) for s in suites}
        cache = CompletionCache()
        invariance: dict[str, dict] = {}
        try:
            for look in looks:
                results = {}
                for s in suites:
                    keep = {c.id for c in order[s.name][: sizes[s.name][look.number - 1]]}
                    part = copy.copy(s)
                    part.cases = [c for c in s.cases if c.id in keep]
                    part.sampled_from = s.sampled_from or len(s.cases)
                    r = evaluate_suite(be, part, model_label=label, arm="candidate", cache=cache,
                                       batch_size=self.cfg.eval.batch_size, latency_n=0,
                                       invariance_n=self.cfg.eval.invariance_sample if look.number == 1 else 0)
                    invariance.setdefault(s.name, r.summary["batch_invariance"])  # checked on the first chunk
                    r.summary["batch_invariance"] = invariance[s.name]
                    results[s.name] = r
                comparison, _ = self._comparison(results)
                decision = decide(comparison, policy, confidence=look.confidence)
                state, rules = settled(decision, look.z)
                used = {k: len(r.outputs) for k, r in results.items()}
                self.say(f"look {look.number}/{look.of} ({sum(used.values())} of {sum(totals.values())} cases, "
                         f"z={look.z:.2f}): " + ({"fail": f"[red]failed on evidence[/red]: {', '.join(rules[:3])}",
                                                   "pass": "[green]every rule passed[/green]"}.get(state)
                                                  or f"{len(rules)} rule(s) not settled yet"))
                if state or look.last:
                    break
        finally:
            cache.close()
        record = describe(look, used, totals, state, rules)
        for r in results.values():
            r.summary["sequential"] = record
            write_result(r, out)
        self.say(f"sequential evaluation: {record['why']}")
        return record

    def _time_latency(self, be, adapter: str, cand_dir: Path) -> Path | None:
        """Time base and candidate on each suite's latency sample in this process (paired), and
        write the timings into the candidate's results and into the run's copy of the baseline
        results (the cached baseline folder is left as it is). Returns the copy, if any."""
        import shutil

        from harness.evals import load_results, load_suites, write_result
        from harness.evals.results import build_summary
        from harness.evals.runner import generation_config, sample_cases, time_paired

        n_cfg, only = self.cfg.eval.latency_sample, self.cfg.eval.latency_suites
        suites = [sample_cases(s, self.cfg.eval.max_cases) for s in load_suites(self.cfg.suites)
                  if only is None or s.name in only]
        todo = [(s, s.spec.latency_sample if n_cfg is None else n_cfg) for s in suites]
        todo = [(s, n) for s, n in todo if n]
        if not todo:
            return None
        base_copy = self.state.folder / "baseline"
        if base_copy.exists():
            shutil.rmtree(base_copy)
        shutil.copytree(self.state.done["baseline"]["results"], base_copy)
        base_results, cand_results = load_results(base_copy), load_results(cand_dir)
        for s, n in todo:
            cases = [c for c in s.cases if s.needs_generation(c)]
            lat_b, lat_c = time_paired(self.backend(), s, cases, generation_config(s), n, adapter,
                                       candidate_backend=None if be is self.backend() else be)
            for r, lat, folder in ((base_results[s.name], lat_b, base_copy), (cand_results[s.name], lat_c, cand_dir)):
                r.summary = {**r.summary, **build_summary(r, s.spec.slices, lat)}
                write_result(r, folder)
            self.say(f"latency {s.name} (batch 1, {len(lat_b['samples'])} cases, both in this run): p50 base "
                     f"{lat_b['p50']:.2f} s, candidate {lat_c['p50']:.2f} s")
        return base_copy

    def _baseline_results(self) -> str:
        """The baseline as this run compares it: the run's copy with paired latency, if timed."""
        return (self.state.done.get("candidate") or {}).get("baseline_timed") or self.state.done["baseline"]["results"]

    def stage_arms(self):
        if not self.cfg.arms:
            return {"arms": []}
        from harness.arms import run_arms

        return run_arms(self)

    def stage_gate(self):
        from harness.gates import compare, decide, load_policy
        from harness.gates.api import render_decision
        from harness.evals import load_results

        policy = load_policy(self.cfg.policy)
        cand = load_results(self.state.done["candidate"]["results"])
        comparison, excluded = self._comparison(cand)
        for suite, ids in excluded.items():
            self.say(f"gate: {len(ids)} {suite} cases left out (the checkpoint was selected on them)")
        from harness.review import add_human_metric

        add_human_metric(comparison, self.run_id, self.reg)  # human/win_rate, when reviewers voted
        arms = {}
        for arm, path in (self.state.done.get("arms", {}).get("results") or {}).items():
            arms[arm] = compare(load_results(path), cand)
        seq = self.state.done["candidate"].get("sequential")
        # a sequential evaluation is judged at the boundary of the look it stopped at, not at the policy's 95 %
        decision = decide(comparison, policy, arms, confidence=seq["confidence"] if seq else None)
        decision.excluded = {k: len(v) for k, v in excluded.items()}
        decision.sequential = seq or {}
        (self.state.folder / "comparison.json").write_text(json.dumps(comparison.to_dict(), indent=1, default=str))
        (self.state.folder / "decision.json").write_text(json.dumps(decision.to_dict(), indent=1, default=str))
        (self.state.folder / "summary.md").write_text(decision.to_markdown())
        render_decision(decision, self.con)  # stderr: stdout stays for --json
        return {"passed": decision.passed, "decision": str(self.state.folder / "decision.json"),
                "comparison": str(self.state.folder / "comparison.json"), "summary_md": str(self.state.folder / "summary.md")}

    def _comparison(self, cand: dict):
        """(the paired comparison of candidate results with the run's baseline, the cases left out):
        the cases a checkpoint was selected on are not scored by the gate."""
        from harness.evals import load_results
        from harness.evals.results import without_cases
        from harness.gates import compare

        base = {k: v for k, v in load_results(self._baseline_results()).items() if k in cand}
        cand = dict(cand)
        excluded = (self.state.done.get("select_checkpoint") or {}).get("excluded") or {}
        for suite, ids in excluded.items():
            if suite in base and suite in cand:
                base[suite], cand[suite] = without_cases(base[suite], ids), without_cases(cand[suite], ids)
        return compare(base, cand), excluded

    def stage_record(self):
        from harness.evals import load_results

        adapter_hash = self.state.done["store_adapter"]["adapter_hash"]
        roles = [("baseline", self._baseline_results()), ("candidate", self.state.done["candidate"]["results"])]
        roles += list((self.state.done.get("arms", {}).get("results") or {}).items())
        for role, path in roles:
            for name, r in load_results(path).items():
                self.reg.record_eval(self.run_id, role=role, suite=name, suite_hash=r.suite_hash,
                                     metrics={k: v["value"] for k, v in r.metrics.items()}, results_path=str(r.path),
                                     results_hash=r.summary.get("results_sha256", ""), model_fingerprint=r.model_fingerprint,
                                     adapter_hash=r.adapter_hash, identity=r.identity)
        decision = json.loads(Path(self.state.done["gate"]["decision"]).read_text())
        self.reg.record_gate(self.run_id, decision, decision["passed"])
        return {"adapter_hash": adapter_hash}

    def stage_report(self):
        if not self.cfg.report:
            return {"report": None}
        from harness.report import write_run_report

        path = write_run_report(self.run_id, registry=self.reg)
        self.reg.update_run(self.run_id, report_path=str(path))
        return {"report": str(path)}

    def stage_promote(self):
        if not self.cfg.channel:
            return {"promoted": False, "why": "no channel configured"}
        if not self.state.done["gate"]["passed"]:
            self.say(f"[red]not promoted[/red]: the gate failed (see {self.state.done['gate']['summary_md']})")
            return {"promoted": False, "why": "gate failed"}
        h = self.state.done["store_adapter"]["adapter_hash"]
        active = next((c for c in self.reg.status() if c["channel"] == self.cfg.channel), None)
        if active and active["adapter"]["hash"] == h:
            self.say(f"adapter {h[:16]} is already active on {self.cfg.channel!r} (same weights as run {active['run_id']})")
            return {"promoted": False, "why": "already active", "channel": self.cfg.channel}
        if active:
            newer = self.reg.get_run(active["run_id"]) if active.get("run_id") else None
            mine = self.reg.get_run(self.run_id)
            if newer and newer["created"] > mine["created"]:  # a resumed old run never moves the channel backwards
                self.say(f"[yellow]not promoted[/yellow]: channel {self.cfg.channel!r} already serves run {newer['id']}, "
                         f"which started after this one; promote this run by hand (`harness promote {self.run_id} "
                         f"--channel {self.cfg.channel}`) if it should replace it")
                return {"promoted": False, "why": f"a newer run ({newer['id']}) serves the channel", "channel": self.cfg.channel}
        with self.reg.transaction():  # served and finished become true together, or neither does
            self.reg.update_run(self.run_id, status="finished", stage="done")
            entry = self.reg.promote(self.run_id, self.cfg.channel)
        self.say(f"[green]promoted[/green] adapter {self.state.done['store_adapter']['adapter_hash'][:16]} to channel {self.cfg.channel!r}")
        return {"promoted": True, "channel": self.cfg.channel, "entry": entry}

    # ---- summary -------------------------------------------------------------------------
    def summary(self) -> dict:
        d = self.state.done
        return {
            "run_id": self.run_id,
            "run_folder": str(self.state.folder),
            "gate_passed": d.get("gate", {}).get("passed"),
            "promoted": d.get("promote", {}).get("promoted"),
            "adapter": d.get("store_adapter", {}).get("path"),
            "adapter_hash": d.get("store_adapter", {}).get("adapter_hash"),
            "report": d.get("report", {}).get("report"),
            "registry": str(self.reg.path),
            "baseline_results": d.get("baseline", {}).get("results"),
            "baseline_cached": d.get("baseline", {}).get("cached"),
            "candidate_results": d.get("candidate", {}).get("results"),
            "summary_md": d.get("gate", {}).get("summary_md"),
        }


def _generation_key(suite) -> dict:
    from harness.evals.runner import generation_config

    return generation_config(suite).cache_key()


def run(config_path: str | Path, registry=None, strict: bool = False) -> dict:
    """Run the whole wrapped loop for one run config; returns where everything is. `strict`: refuse
    to train when the gate plan finds a blocking rule the run's cases cannot decide."""
    return Pipeline(config_path, registry, strict=strict).run()


def resume(run_id: str, registry=None, strict: bool = False) -> dict:
    """Continue a failed or interrupted run after its last finished stage (refused for a
    finished run, and for one another process is running)."""
    from harness.registry import Registry

    state = RunState.load(run_id)
    reg = registry or Registry()
    row = reg.get_run(run_id)
    if row is None:
        raise HarnessError(f"run {run_id} has a folder ({state.folder}) but no record in {reg.path}: "
                           "resume it with the registry it was started with (--registry)")
    if row["status"] == "finished":
        raise HarnessError(f"run {run_id} is finished: nothing to resume (`harness show {run_id}`)")
    return Pipeline(state.config_path, reg, resume=state, strict=strict).run()


def print_summary(s: dict) -> None:
    verdict = "PASSED" if s["gate_passed"] else "FAILED"
    lines = [
        f"run        {s['run_id']}  gate {verdict}, {'promoted' if s['promoted'] else 'not promoted'}",
        f"baseline   {s['baseline_results']}{'  (reused from cache)' if s['baseline_cached'] else ''}",
        f"candidate  {s['candidate_results']}",
        f"adapter    {s['adapter']}",
        f"gate       {s['summary_md']}",
        f"report     {s['report'] or '-'}",
        f"registry   {s['registry']}",
    ]
    print("\n".join(lines))


class Terminated(KeyboardInterrupt):
    """SIGTERM (what CI runners and `kill` send), handled like Ctrl-C: the run is marked
    `interrupted`, never promoted, and can be resumed."""


def _terminate_as_interrupt():
    """While a run runs, SIGTERM raises `Terminated`; returns what restores the old handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_term(signum, frame):
        raise Terminated()

    old = signal.signal(signal.SIGTERM, on_term)
    return lambda: signal.signal(signal.SIGTERM, old)


# what a trainer checkpoint holds beside the adapter: resume state, pickled (never stored)
TRAINER_STATE = {"trainer_state.json", "manifest.json"}


def adapter_files(folder: str | Path) -> list[Path]:
    """The files of an adapter folder or trainer checkpoint that make up the adapter: its
    weights, config and tokenizer files; not the optimizer, scheduler, RNG or trainer state
    (pickles the store refuses, and nothing a served adapter needs)."""
    from harness.registry.store import PICKLE_SUFFIXES

    return sorted(f for f in Path(folder).iterdir() if f.is_file() and f.name not in TRAINER_STATE
                  and f.suffix.lstrip(".").lower() not in PICKLE_SUFFIXES)
