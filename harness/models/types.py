"""What every backend speaks: chat messages in, completions and log-likelihoods out, and the
generation settings that (with the model's identity) key the completion cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Messages = list[dict[str, str]]

# Memory the auto batch size may plan for (bytes); overridable per call.
DEFAULT_MEMORY_BUDGET = 4 * 1024**3


@dataclass(frozen=True)
class GenerationConfig:
    """Generation settings; greedy decoding so results are reproducible and cacheable."""

    max_new_tokens: int = 64
    batch_size: int | None = None  # rows generated together; None: chosen from the memory budget
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    stop: tuple[str, ...] = ()  # generation ends at the first of these; the text excludes it
    # a request timed alone (latency): on the harness's engine its products are sized to it, as a
    # server runs a lone request, not padded to the engine's fixed blocks (about 2x faster at
    # batch 1 on a CPU); its text may then differ by rounding, so it is never cached or compared
    timed: bool = False

    def cache_key(self) -> dict:
        """What changes outputs (batch size does not: batch N equals batch 1)."""
        key = {"max_new_tokens": self.max_new_tokens, "decoding": "greedy"}
        if self.stop:
            key["stop"] = list(self.stop)
        return key


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to the earliest stop string, and whether one was found."""
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


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
    """What the evals, the pipeline and the plugin use of a model: every backend (`HFBackend`,
    in process; `OpenAIBackend`, a server) implements all of it."""

    fingerprint: str  # the base weights' fingerprint (computed locally, also for a served model)
    spec: str  # the model spec it was made from
    adapters: dict  # adapter name -> its folder
    active_adapter: str | None
    dtype: str
    device: str
    engine: str
    quantize: str | None

    @property
    def identity(self) -> dict:
        """What computes the outputs (engine, dtype, device, versions): in every cache key."""

    @property
    def adapter_hash(self) -> str | None:
        """The active adapter's store hash, or None for the base."""

    @property
    def served_by(self) -> dict | None:
        """Where a served model runs (address, engine, version), recorded beside the results."""

    def load_adapter(self, path, name: str | None = None) -> str:
        """Attach (or find served) a PEFT adapter folder and make it active; returns its name."""

    def set_adapter(self, name: str | None) -> None:
        """Switch to a loaded adapter, or None for the base."""

    def render(self, messages: Messages) -> str:
        """The chat as the model reads it (its chat template)."""

    def generate(self, requests: list[Messages], config: GenerationConfig, progress=None) -> list[Completion]:
        """Greedy completions, in input order; `progress(n)` as requests finish."""

    def loglikelihood(self, pairs: list[tuple[Messages, str]], batch_size: int | None = None,
                      progress=None) -> list[LoglikResult]:
        """Sum log-prob of each continuation after its chat context, in input order."""
