"""The Hugging Face backend (the `Backend` protocol it implements is in `harness.models.types`).

`HFBackend` loads a model once (device and dtype chosen per machine: `harness.models.device`),
attaches any number of PEFT adapters and switches between them. Generation and log-likelihood
run through `harness.models.engine` where the model allows: each request's numbers are the same
whatever else shares its batch (bitwise, in bf16 too), a shared chat-template prefix is
prefilled once, and finished rows leave the batch. Elsewhere (models the engine does not know,
adapters whose virtual tokens shift with padding) it falls back to transformers' `generate()`:
requests sorted by length, batched with left padding; prompt tuning, p-tuning and prefix tuning
batched only with prompts of equal length (peft 0.22 or later: earlier, generate() dropped a
prefix adapter's prefix, with the KV cache and without it).

What computed an output (`identity`: engine, dtype, device, library versions) is part of every
cache key and results header, so fp32 and bf16 results, or the engine's and generate()'s, never
mix.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.models.batching import (
    MAX_AUTO_BATCH,
    MAX_ENGINE_ROWS,
    length_batches,
    plan_batches,
)
from harness.models.chat import ChatTokens
from harness.models.types import (
    Completion,
    GenerationConfig,
    LoglikResult,
    Messages,
    cut_at_stop,
)

PADDING_SENSITIVE = {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "MULTITASK_PROMPT_TUNING", "CPT"}
ENGINES = ("auto", "generate")


@dataclass
class HFBackend(ChatTokens):
    """A base model loaded once, with any number of PEFT adapters attached and switchable."""

    model: object
    tokenizer: object
    fingerprint: str
    spec: str = ""
    path: Path | None = None
    adapters: dict[str, Path] = field(default_factory=dict)
    _adapter_hashes: dict[str, str] = field(default_factory=dict, repr=False)
    active_adapter: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    engine: str = "auto"  # "auto": the batch-invariant engine where it can run; "generate": transformers' generate()
    quantize: str | None = None  # "nf4": the base's linear layers in 4-bit (a QLoRA candidate's base)
    _engine: object = field(default=None, repr=False)
    _timing_engine: object = field(default=None, repr=False)  # products sized to the request (config.timed)
    _engine_problem: str | None = field(default=None, repr=False)

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: str, dtype: str = "auto", device: str = "auto", engine: str = "auto",
                  quantize: str | None = None) -> HFBackend:
        """Load a model spec; `dtype`/`device` `auto` pick what this machine runs fast;
        `quantize="nf4"`: the base in 4-bit, as QLoRA trained on it (part of the identity)."""
        from harness.models.loading import load_base

        if engine not in ENGINES:
            raise HarnessError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
        model, tokenizer, resolved, fp = load_base(spec, dtype=dtype, device=device, quantize=quantize)
        param = model.get_input_embeddings().weight  # never a packed 4-bit weight
        return cls(model=model, tokenizer=tokenizer, fingerprint=fp, spec=spec, path=resolved.path,
                   dtype=str(param.dtype).removeprefix("torch."), device=param.device.type, engine=engine,
                   quantize=quantize)

    # ---- identity ------------------------------------------------------------------------
    def _grouped(self):
        """The batch-invariant engine for this model and the active adapter, or None."""
        if self.engine == "generate" or self._peft_type() in PADDING_SENSITIVE:
            return None
        if self._engine is None and self._engine_problem is None:
            from harness.models.engine import Engine, engine_settings, supports

            self._engine_problem = supports(self.model)
            if self._engine_problem is None:
                self._engine = Engine(self.model, **engine_settings(self.device))
                self._timing_engine = None
        return self._engine

    def _timing(self, eng):
        """The engine over the same model with every product as it comes (rows 0): a lone request
        costs what it needs, not a block of 64 rows (`GenerationConfig.timed`)."""
        if self._timing_engine is None or self._timing_engine._packed is not eng._packed:  # built beside this engine
            self._timing_engine = eng.timing()
        return self._timing_engine

    @property
    def identity(self) -> dict:
        """What computed this backend's outputs: part of every cache key and results header
        (with an adapter attached, peft's version too: its code runs prefix and prompt adapters)."""
        import torch
        import transformers

        from harness.registry.environment import library_versions

        eng = self._grouped()
        return {
            "engine": eng.name if eng is not None else "transformers-generate",
            "dtype": self.dtype,
            "device": self.device,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            **({"peft": library_versions()["peft"]} if self.active_adapter else {}),  # an adapter's outputs are peft's code too
            **({"quantization": self.quantize} if self.quantize else {}),  # in every cache key, never compared away
        }

    @property
    def served_by(self) -> None:
        return None  # in this process

    @property
    def base_model(self):
        # peft is imported only once an adapter is attached (it costs seconds at start-up)
        return self.model.get_base_model() if self.adapters else self.model

    def load_adapter(self, path: str | Path, name: str | None = None) -> str:
        """Attach a PEFT adapter folder (safetensors only) to the loaded base; returns its name."""
        from peft import PeftModel

        from harness.models.fingerprint import adapter_fingerprint, check_adapter_folder

        path = check_adapter_folder(Path(path))
        fingerprint = adapter_fingerprint(path)
        name = name or f"a{fingerprint[:12]}"
        if name in self.adapters:  # loaded before (e.g. while checkpoints were compared): make it active again
            self.set_adapter(name)
            return name
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name, is_trainable=False)
        self.model.eval()
        self._adapter_in_base_dtype(name)
        self.adapters[name] = path
        self._adapter_hashes[name] = fingerprint  # hashed once: the files are not read again per call
        self._engine = None  # built again over the wrapped model
        self.set_adapter(name)
        return name

    def _adapter_in_base_dtype(self, name: str) -> None:
        """peft keeps adapter weights in fp32 on a bf16 base, so every adapted layer casts its
        input up and its output back; the adapter runs in the base's dtype instead (the run's
        identity already says bf16, and the cache key holds the dtype)."""
        import torch

        dtype = getattr(torch, self.dtype)
        if dtype == torch.float32:
            return
        for pname, param in self.model.named_parameters():
            if f".{name}." in pname and param.dtype != dtype and param.is_floating_point():
                param.data = param.data.to(dtype)

    def set_adapter(self, name: str | None) -> None:
        """Switch to a loaded adapter, or `None` for the plain base model."""
        if name is not None:
            if name not in self.adapters:
                raise HarnessError(f"adapter {name!r} is not loaded (loaded: {', '.join(self.adapters) or 'none'})")
            self.model.set_adapter(name)
        self.active_adapter = name

    @property
    def adapter_hash(self) -> str | None:
        """The active adapter's identity (`adapter_fingerprint`, the store's hash too), or None."""
        return self._adapter_hashes[self.active_adapter] if self.active_adapter else None

    def _peft_type(self) -> str | None:
        if not self.active_adapter:
            return None
        cfg = self.model.peft_config[self.active_adapter]
        return str(getattr(cfg.peft_type, "value", cfg.peft_type))

    @contextlib.contextmanager
    def _active(self):
        """The model as the active adapter sees it; the base's exact weights when none is active."""
        import torch

        with torch.inference_mode():
            if self.adapters and self.active_adapter is None:
                with self.model.disable_adapter():
                    yield self.model
            else:
                yield self.model

    # ---- prompts -------------------------------------------------------------------------
    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def auto_batch_size(self, seq_len: int, budget: int) -> int:
        """generate(): the largest batch whose KV cache and activations fit the memory budget
        (capped at 32)."""
        cfg = self.base_model.config
        n_kv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        elem = next(self.base_model.parameters()).element_size()
        kv = 2 * cfg.num_hidden_layers * n_kv * head_dim * elem
        act = (cfg.hidden_size * 4 + getattr(cfg, "intermediate_size", 4 * cfg.hidden_size) * 3) * elem
        per_seq = seq_len * (kv + act) + cfg.vocab_size * 4 * 2
        return max(1, min(MAX_AUTO_BATCH, budget // max(per_seq, 1)))

    # ---- generation ----------------------------------------------------------------------
    def generate(self, requests: list[Messages], config: GenerationConfig = GenerationConfig(), progress=None) -> list[Completion]:
        """Greedy completions for chat requests, in input order."""
        if not requests:
            return []
        eng = self._grouped()
        if eng is None:
            return self._generate_hf(requests, config, progress)
        if config.timed and len(requests) == 1:
            eng = self._timing(eng)
        encoded = [self.encode(m) for m in requests]
        split = [self.prefix_length(m, e) for m, e in zip(requests, encoded)]
        longest = max(len(e) for e in encoded) + config.max_new_tokens
        rows = config.batch_size or max(1, min(MAX_ENGINE_ROWS, config.memory_budget // (longest * eng.kv_bytes_per_token())))
        stop_fn = None
        if config.stop:
            tail = max(len(s) for s in config.stop) + 16

            def stop_fn(i: int, toks: list[int]) -> bool:  # only the last few tokens can complete a stop string
                return cut_at_stop(self.tokenizer.decode(toks[-tail:], skip_special_tokens=True), config.stop)[1]

        with self._active():
            raw = eng.generate(list(zip(encoded, split)), config.max_new_tokens, self._stop_ids(), self.pad_id,
                               max_rows=rows, stop=stop_fn, on_done=progress)
        out = []
        for e, (toks, reason, seconds) in zip(encoded, raw):
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            if config.stop:
                text, hit = cut_at_stop(text, config.stop)
                reason = "stop" if hit else reason
            out.append(Completion(text=text, prompt_tokens=len(e), completion_tokens=len(toks), latency_s=seconds,
                                  finish_reason=reason))
        return out

    def prefix_length(self, messages: Messages, ids: list[int]) -> int:
        """Tokens of `ids` that come before the last message's content: the chat-template head
        (system prompt, earlier turns, the last turn's role header), which requests sharing it
        prefill once. A function of the request alone, so a request's numbers never depend on
        its batch; 0 where the tokenizer gives no offsets."""
        marker = "\ue000harness\ue001"
        last = dict(messages[-1])
        if not last.get("content") or not getattr(self.tokenizer, "is_fast", False):
            return 0
        text = self.render(messages)
        probe = self.render([*messages[:-1], {**last, "content": marker}])
        at = probe.find(marker)
        if at <= 0 or text[:at] != probe[:at]:
            return 0
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        n = 0
        while n < len(offsets) and offsets[n][1] <= at:
            n += 1
        return min(n, len(ids) - 1)

    def _generate_hf(self, requests: list[Messages], config: GenerationConfig, progress=None) -> list[Completion]:
        """transformers' generate(): length-sorted batches with left padding."""
        import torch

        encoded = [self.encode(m) for m in requests]
        lengths = [len(e) for e in encoded]
        peft_type = self._peft_type()
        bs = config.batch_size or self.auto_batch_size(max(lengths) + config.max_new_tokens, config.memory_budget)
        if peft_type in PADDING_SENSITIVE:
            batches = length_batches(lengths, bs, equal_lengths=True)
        else:
            batches = plan_batches(lengths, bs, config.max_new_tokens, on_gpu=self._on_gpu())
        eos = self._stop_ids()
        out: list[Completion | None] = [None] * len(requests)
        with self._active() as model:
            for batch in batches:
                width = max(lengths[i] for i in batch)
                ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, width - lengths[i]:] = torch.tensor(encoded[i])
                    mask[row, width - lengths[i]:] = 1
                t0 = time.perf_counter()
                gen = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=config.max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.pad_id,
                    eos_token_id=list(eos),
                )
                elapsed = time.perf_counter() - t0
                for row, i in enumerate(batch):
                    new = gen[row, width:].tolist()
                    cut = next((k for k, t in enumerate(new) if t in eos), None)
                    toks = new if cut is None else new[:cut]
                    text = self.tokenizer.decode(toks, skip_special_tokens=True)
                    hit = False
                    if config.stop:  # the greedy text up to a stop string is the same as if generation had stopped there
                        text, hit = cut_at_stop(text, config.stop)
                        if hit:
                            toks = self._tokens_through(toks, text, config.stop)
                    out[i] = Completion(
                        text=text,
                        prompt_tokens=lengths[i],
                        completion_tokens=len(toks),
                        latency_s=elapsed,
                        finish_reason="stop" if (cut is not None or hit) else "length",
                    )
                if progress:
                    progress(len(batch))
        return out  # type: ignore[return-value]

    def _tokens_through(self, toks: list[int], kept: str, stop: tuple[str, ...]) -> list[int]:
        """The shortest prefix of `toks` whose text holds `kept` and then a stop string."""
        for k in range(1, len(toks) + 1):
            text = self.tokenizer.decode(toks[:k], skip_special_tokens=True)
            if cut_at_stop(text, stop)[1]:
                return toks[:k]
        return toks

    def _on_gpu(self) -> bool:
        return next(self.base_model.parameters()).device.type != "cpu"

    def _stop_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        gen_eos = getattr(self.base_model.generation_config, "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif gen_eos:
            ids.update(gen_eos)
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id:
            ids.add(im_end)
        return {i for i in ids if i is not None}

    # ---- log-likelihood ------------------------------------------------------------------
    def loglikelihood(self, pairs: list[tuple[Messages, str]], batch_size: int | None = None, progress=None) -> list[LoglikResult]:
        """Sum log-prob of each continuation after its chat context. The engine runs each
        distinct context once and scores its continuations from the cache; generate()'s
        fallback runs every pair whole, batched with right padding."""
        if not pairs:
            return []
        rendered: dict[int, tuple[list[int], int]] = {}
        seqs, split = [], []
        for messages, continuation in pairs:
            key = id(messages)
            if key not in rendered:
                ctx = self.encode(messages)
                rendered[key] = (ctx, self.prefix_length(messages, ctx))
            ctx, p = rendered[key]
            cont = self.continuation_ids(continuation)
            seqs.append((ctx, cont))
            split.append(p)
        eng = self._grouped()
        if eng is not None:
            with self._active():
                raw = eng.loglikelihood(seqs, self.pad_id, max_rows=batch_size or MAX_ENGINE_ROWS, on_done=progress,
                                        prefix_lengths=split)
            return [LoglikResult(logprob=lp, is_greedy=g, n_tokens=len(c)) for (lp, g), (_, c) in zip(raw, seqs)]
        return self._loglikelihood_hf(seqs, batch_size or 16, progress)

    def _loglikelihood_hf(self, seqs: list[tuple[list[int], list[int]]], batch_size: int, progress=None) -> list[LoglikResult]:
        import torch

        lengths = [len(c) + len(k) for c, k in seqs]
        equal = self._peft_type() in PADDING_SENSITIVE
        out: list[LoglikResult | None] = [None] * len(seqs)
        with self._active() as model:
            for batch in length_batches(lengths, batch_size, equal_lengths=equal):
                width = max(lengths[i] for i in batch)
                ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    full = seqs[i][0] + seqs[i][1]
                    ids[row, : len(full)] = torch.tensor(full)
                    mask[row, : len(full)] = 1
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
                # prompt tuning prepends virtual tokens whose logits come first
                shift = logits.shape[1] - width
                logprobs = torch.log_softmax(logits[:, shift:], dim=-1)
                for row, i in enumerate(batch):
                    ctx, cont = seqs[i]
                    # token t at position p is predicted by the logits at position p-1
                    start = len(ctx) - 1
                    lp = logprobs[row, start : start + len(cont)]
                    target = torch.tensor(cont)
                    picked = lp.gather(1, target[:, None]).squeeze(1)
                    out[i] = LoglikResult(
                        logprob=float(picked.sum()),
                        is_greedy=bool((lp.argmax(-1) == target).all()),
                        n_tokens=len(cont),
                    )
                if progress:
                    progress(len(batch))
        return out  # type: ignore[return-value]
