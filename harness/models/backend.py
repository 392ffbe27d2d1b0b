"""The `Backend` protocol and its Hugging Face implementation.

The HF backend applies the model's chat template, sorts requests by length, batches them with
left padding and returns results in input order. Greedy output at batch N equals batch 1: pads
are masked and positions follow the mask. Adapters whose virtual tokens shift with padding
(prompt tuning, p-tuning, prefix tuning) are batched only with prompts of equal length, so no
padding is ever used for them; prefix tuning generates without the KV cache because the cached
path drops the prefix (transformers 5 + peft 0.21).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from harness.errors import HarnessError

Messages = list[dict[str, str]]

# Memory the auto batch size may plan for (bytes); overridable per call.
DEFAULT_MEMORY_BUDGET = 4 * 1024**3
MAX_AUTO_BATCH = 32


# Cost of generation on a CPU, in units of one prompt token's prefill (measured on 2 cores with
# SmolLM2-135M: prefill ~2.8 ms per padded token; a decode step ~0.1 s + ~6 ms per row + ~0.03 ms
# per row per token of context). On a GPU a step's fixed cost dominates: fewer, fuller batches win.
CPU_STEP_COSTS = (36.0, 2.0, 0.009)
GPU_STEP_COSTS = (2000.0, 0.5, 0.0)


def plan_batches(lengths: list[int], max_batch: int, new_tokens: int, on_gpu: bool = False) -> list[list[int]]:
    """Indices grouped into generation batches, longest first, splitting where padding costs more
    than the extra decode steps: one long prompt in a batch of short ones pads every row to its
    length. Groups are contiguous runs of the length-sorted order (dynamic programming over the
    split points); outputs do not depend on the grouping, only the time does."""
    step, row, row_ctx = GPU_STEP_COSTS if on_gpu else CPU_STEP_COSTS
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    sorted_len = [lengths[i] for i in order]

    def cost(start: int, end: int) -> float:  # one batch: order[start:end], padded to its longest
        n, width = end - start, sorted_len[start]
        return n * width + new_tokens * (step + n * (row + row_ctx * (width + new_tokens / 2)))

    best = [0.0] + [float("inf")] * len(order)  # best[k]: cheapest plan for the first k prompts
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(max(0, end - max_batch), end):
            c = best[start] + cost(start, end)
            if c < best[end]:
                best[end], cut[end] = c, start
    batches, end = [], len(order)
    while end:
        batches.append(order[cut[end]:end])
        end = cut[end]
    return batches[::-1]


@dataclass(frozen=True)
class GenerationConfig:
    """Generation settings; greedy decoding so results are reproducible and cacheable."""

    max_new_tokens: int = 64
    batch_size: int | None = None  # None: chosen from the memory budget
    memory_budget: int = DEFAULT_MEMORY_BUDGET

    def cache_key(self) -> dict:
        """What changes outputs (batch size does not: batch N equals batch 1)."""
        return {"max_new_tokens": self.max_new_tokens, "decoding": "greedy"}


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float  # wall time of the batch this request was generated in
    finish_reason: str = "stop"  # "stop" (EOS) or "length"


@dataclass
class LoglikResult:
    logprob: float  # sum of log-probabilities of the continuation tokens
    is_greedy: bool  # every continuation token is the argmax
    n_tokens: int = 0


@runtime_checkable
class Backend(Protocol):
    fingerprint: str

    def generate(self, requests: list[Messages], config: GenerationConfig) -> list[Completion]: ...

    def loglikelihood(self, pairs: list[tuple[Messages, str]]) -> list[LoglikResult]: ...


PADDING_SENSITIVE = {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "MULTITASK_PROMPT_TUNING", "CPT"}


@dataclass
class HFBackend:
    """A base model loaded once, with any number of PEFT adapters attached and switchable."""

    model: object
    tokenizer: object
    fingerprint: str
    spec: str = ""
    path: Path | None = None
    adapters: dict[str, Path] = field(default_factory=dict)
    active_adapter: str | None = None

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: str, dtype: str = "float32") -> HFBackend:
        from harness.models.loading import load_base

        model, tokenizer, resolved, fp = load_base(spec, dtype=dtype)
        return cls(model=model, tokenizer=tokenizer, fingerprint=fp, spec=spec, path=resolved.path)

    @property
    def base_model(self):
        # peft is imported only once an adapter is attached (it costs seconds at start-up)
        return self.model.get_base_model() if self.adapters else self.model

    def load_adapter(self, path: str | Path, name: str | None = None) -> str:
        """Attach a PEFT adapter folder (safetensors only) to the loaded base; returns its name."""
        from peft import PeftModel

        from harness.models.fingerprint import adapter_fingerprint, check_adapter_folder

        path = check_adapter_folder(Path(path))
        name = name or f"a{adapter_fingerprint(path)[:12]}"
        if name in self.adapters:
            return name
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name, is_trainable=False)
        self.model.eval()
        self.adapters[name] = path
        self.set_adapter(name)
        return name

    def set_adapter(self, name: str | None) -> None:
        """Switch to a loaded adapter, or `None` for the plain base model."""
        if name is not None:
            if name not in self.adapters:
                raise HarnessError(f"adapter {name!r} is not loaded (loaded: {', '.join(self.adapters) or 'none'})")
            self.model.set_adapter(name)
        self.active_adapter = name

    @property
    def adapter_hash(self) -> str | None:
        from harness.models.fingerprint import adapter_fingerprint

        return adapter_fingerprint(self.adapters[self.active_adapter]) if self.active_adapter else None

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
    def render(self, messages: Messages) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, messages: Messages) -> list[int]:
        return self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def auto_batch_size(self, seq_len: int, budget: int) -> int:
        """Largest batch whose KV cache and activations fit the memory budget (capped at 32)."""
        cfg = self.base_model.config
        n_kv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        elem = next(self.base_model.parameters()).element_size()
        kv = 2 * cfg.num_hidden_layers * n_kv * head_dim * elem
        act = (cfg.hidden_size * 4 + getattr(cfg, "intermediate_size", 4 * cfg.hidden_size) * 3) * elem
        per_seq = seq_len * (kv + act) + cfg.vocab_size * 4 * 2
        return max(1, min(MAX_AUTO_BATCH, budget // max(per_seq, 1)))

    def _batches(self, lengths: list[int], batch_size: int, equal_lengths: bool) -> list[list[int]]:
        """Indices grouped into batches, longest first; optionally only equal lengths together."""
        order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
        batches: list[list[int]] = []
        for i in order:
            last = batches[-1] if batches else None
            if last is None or len(last) >= batch_size or (equal_lengths and lengths[last[0]] != lengths[i]):
                batches.append([i])
            else:
                last.append(i)
        return batches

    # ---- generation ----------------------------------------------------------------------
    def generate(self, requests: list[Messages], config: GenerationConfig = GenerationConfig(), progress=None) -> list[Completion]:
        """Greedy completions for chat requests, in input order."""
        import torch

        if not requests:
            return []
        encoded = [self.encode(m) for m in requests]
        lengths = [len(e) for e in encoded]
        peft_type = self._peft_type()
        bs = config.batch_size or self.auto_batch_size(max(lengths) + config.max_new_tokens, config.memory_budget)
        if peft_type in PADDING_SENSITIVE:
            batches = self._batches(lengths, bs, equal_lengths=True)
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
                    use_cache=peft_type != "PREFIX_TUNING",
                )
                elapsed = time.perf_counter() - t0
                for row, i in enumerate(batch):
                    new = gen[row, width:].tolist()
                    cut = next((k for k, t in enumerate(new) if t in eos), None)
                    toks = new if cut is None else new[:cut]
                    out[i] = Completion(
                        text=self.tokenizer.decode(toks, skip_special_tokens=True),
                        prompt_tokens=lengths[i],
                        completion_tokens=len(toks),
                        latency_s=elapsed,
                        finish_reason="length" if cut is None else "stop",
                    )
                if progress:
                    progress(len(batch))
        return out  # type: ignore[return-value]

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
    def loglikelihood(self, pairs: list[tuple[Messages, str]], batch_size: int = 16, progress=None) -> list[LoglikResult]:
        """Sum log-prob of each continuation after its chat context, batched with right padding."""
        import torch

        if not pairs:
            return []
        rendered: dict[int, list[int]] = {}
        seqs = []
        for messages, continuation in pairs:
            key = id(messages)
            ctx = rendered.get(key)
            if ctx is None:
                ctx = rendered[key] = self.encode(messages)
            cont = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
            if not cont:
                raise HarnessError(f"empty continuation for log-likelihood: {continuation!r}")
            seqs.append((ctx, cont))
        lengths = [len(c) + len(k) for c, k in seqs]
        equal = self._peft_type() in PADDING_SENSITIVE
        out: list[LoglikResult | None] = [None] * len(pairs)
        with self._active() as model:
            for batch in self._batches(lengths, batch_size, equal_lengths=equal):
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
