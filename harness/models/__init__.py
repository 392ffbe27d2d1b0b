"""Model specs, loading, fingerprints and the generation backend."""

from harness.models.backend import HFBackend
from harness.models.fingerprint import adapter_fingerprint, model_fingerprint
from harness.models.loading import describe, load_base, load_tokenizer
from harness.models.specs import DEFAULT_MODEL, EMBEDDED, ResolvedModel, resolve
from harness.models.types import (
    Backend,
    Completion,
    GenerationConfig,
    LoglikResult,
    Messages,
)

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED",
    "Backend",
    "Completion",
    "GenerationConfig",
    "HFBackend",
    "LoglikResult",
    "Messages",
    "ResolvedModel",
    "adapter_fingerprint",
    "describe",
    "load_base",
    "load_tokenizer",
    "model_fingerprint",
    "resolve",
]
