"""The run context every stage function takes: the validated configs, the registry, the console,
the run's state, and the models it evaluates (loaded once, shared by the stages)."""

from __future__ import annotations

from pathlib import Path

from harness.console import console
from harness.models.types import Backend
from harness.pipeline.state import RunState


class RunContext:
    def __init__(self, cfg, train_cfg, registry, state: RunState):
        self.cfg, self.train_cfg, self.reg, self.state = cfg, train_cfg, registry, state
        self.con = console()
        self._backend = None
        self._quantized = None  # the 4-bit base a QLoRA candidate runs on
        self._server = None  # the `vllm serve` of eval.backend vllm
        self._resolved = None  # the base spec resolved (base_resolved)
        self.lease = None  # the run's lease when open_run took it (a new run); run_stages takes it otherwise

    @property
    def run_id(self) -> str:
        return self.state.run_id

    @property
    def records(self):
        return self.state.records

    def say(self, msg: str) -> None:
        self.con.print(msg)

    def backend(self) -> Backend:
        """The base model as the evals run it (loaded on first use)."""
        if self._backend is None and self.cfg.eval.backend != "hf":
            self._backend = self._served_backend()
        if self._backend is None:
            from harness.models import HFBackend
            from harness.train.methods import METHODS

            # adapters whose virtual tokens shift with padding run through generate(): the base
            # must run through it too, or baseline and candidate would not be comparable
            engine = "generate" if METHODS[self.train_cfg.method].prompt_learning else "auto"
            self._backend = HFBackend.from_spec(self.cfg.base_model, dtype=self.cfg.eval.dtype, device=self.cfg.eval.device,
                                                engine=engine)
        return self._backend

    def _served_backend(self):
        """eval.backend vllm: a `vllm serve` of the base started now (stopped by `close`);
        openai: the running server of eval.server.url."""
        from harness.models.openai_backend import OpenAIBackend

        ev = self.cfg.eval
        if ev.backend == "vllm":
            from harness.models.device import placement
            from harness.models.server import VLLMServer, lora_rank_for

            dtype = placement(ev.dtype, ev.device)[0]
            rank = lora_rank_for(max(ev.server.max_lora_rank, self.train_cfg.lora.r))
            log = self.state.folder / "vllm.log"
            self._server = VLLMServer(self.base_resolved().path, ev.server.model or "base", dtype=dtype,
                                      command=ev.server.command, max_lora_rank=rank, args=ev.server.args,
                                      log_path=log, startup_timeout_s=ev.server.startup_timeout_s)
            self.say(f"starting vllm serve ({dtype}; log {log})")
            self._server.start()
            url, name = self._server.url, self._server.served_model
        else:
            url, name, dtype = ev.server.url, ev.server.model, ev.dtype
        return OpenAIBackend.connect(url, name, self.cfg.base_model, dtype=dtype, concurrency=ev.server.concurrency,
                                     loglik_concurrency=ev.server.loglik_concurrency, timeout_s=ev.server.timeout_s)

    def stop_server(self) -> None:
        """Stop the model server before training: on a GPU it holds the memory training needs;
        the next stage that evaluates starts it again."""
        if self._server is not None:
            self.close()

    def close(self) -> None:
        """Stop what the run started: the model server."""
        if self._backend is not None and hasattr(self._backend, "close"):
            self._backend.close()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._backend = None

    def candidate_backend(self, folder: str | Path) -> tuple[Backend, str | None]:
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

    def base_resolved(self):
        """The base spec resolved once per run (a hub spec asks the hub each time it resolves)."""
        if self._resolved is None:
            from harness.models import resolve

            self._resolved = resolve(self.cfg.base_model)
        return self._resolved

    def base_fingerprint(self) -> str:
        from harness.models import model_fingerprint

        return model_fingerprint(self.base_resolved().path)

    def gate_suites(self):
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

    def baseline_results(self) -> str:
        """The baseline as this run compares it: the run's copy with paired latency, if timed."""
        cand = self.records.get("candidate")
        return (cand.baseline_timed if cand else None) or self.records.get("baseline").results

    def excluded(self) -> dict:
        sel = self.records.get("select_checkpoint")
        return (sel.excluded if sel else None) or {}

    def comparison(self, cand: dict):
        """(the paired comparison of candidate results with the run's baseline, the cases left out):
        the cases a checkpoint was selected on are not scored by the gate."""
        from harness.evals import load_results
        from harness.evals.results import without_cases
        from harness.gates import compare

        base = {k: v for k, v in load_results(self.baseline_results()).items() if k in cand}
        cand = dict(cand)
        excluded = self.excluded()
        for suite, ids in excluded.items():
            if suite in base and suite in cand:
                base[suite], cand[suite] = without_cases(base[suite], ids), without_cases(cand[suite], ids)
        return compare(base, cand), excluded
