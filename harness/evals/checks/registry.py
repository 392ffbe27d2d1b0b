"""The check registry: a check is a factory registered by name with `@check(...)`.

A factory takes the parameters written in suite.yaml (plus `suite_dir`, when it declares it)
and returns a callable `score(sample) -> CheckResult`. Third parties add checks through the
entry point group `harness.checks` (each entry point names a module whose import registers
checks), or point a suite at `module:function` directly.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ENTRY_POINT_GROUP = "harness.checks"


@dataclass
class CheckResult:
    passed: bool
    score: float | None = None  # defaults to 1.0/0.0 from `passed`
    reason: str = ""
    fields: dict[str, bool] = field(default_factory=dict)  # sub-results, e.g. per-field accuracy

    def __post_init__(self):
        if self.score is None:
            self.score = 1.0 if self.passed else 0.0


@dataclass
class Sample:
    """What a check sees for one case: the case, the model's output and, for log-likelihood
    checks, one result per continuation the check asked for."""

    case: Any
    output: str | None
    messages: list[dict] = field(default_factory=list)
    logliks: list | None = None


@dataclass(frozen=True)
class CheckInfo:
    name: str
    factory: Callable
    needs: str  # "generation" | "loglik"
    description: str


REGISTRY: dict[str, CheckInfo] = {}
_entry_points_loaded = False


def check(name: str, needs: str = "generation"):
    """Register a check factory under `name`. `needs="loglik"` for checks scored by
    log-likelihood: their callable also has `continuations(case) -> list[str]`."""

    def wrap(factory: Callable) -> Callable:
        REGISTRY[name] = CheckInfo(name, factory, needs, (inspect.getdoc(factory) or "").split("\n")[0])
        return factory

    return wrap


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def get_check(name: str) -> CheckInfo | None:
    """A registered check by name, or a custom one by dotted path `package.module:function`."""
    import harness.evals.checks  # noqa: F401  (registers the built-in checks)

    if name in REGISTRY:
        return REGISTRY[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None
        needs = getattr(fn, "harness_needs", "generation")
        return CheckInfo(name, fn, needs, (inspect.getdoc(fn) or "").split("\n")[0])
    _load_entry_points()
    return REGISTRY.get(name)


def reads(score: Callable, expected=(), input=()) -> Callable:
    """Attach `score.validate(case)`: the suite loader calls it on every case the check applies to,
    so a field the check reads but a case lacks is reported at load, with its name, not as a zero
    metric after the model ran. A case whose expected (input) is not an object is its own value."""
    before = getattr(score, "validate", None)

    def validate(case) -> None:
        for name, value, fields in (("expected", case.expected, expected), ("input", case.input, input)):
            for f in fields:
                if f is not None and isinstance(value, dict) and f not in value:
                    have = ", ".join(sorted(value)) or "none"
                    raise ValueError(f"field '{name}.{f}': missing, and the check reads it (this case's {name} fields: {have})")
        if before:
            before(case)

    score.validate = validate
    return score


def available_checks() -> list[str]:
    import harness.evals.checks  # noqa: F401

    _load_entry_points()
    return sorted(REGISTRY)


def build_check(info: CheckInfo, params: dict, suite_dir) -> Callable:
    """Instantiate a check with its parameters; TypeError/ValueError mean bad parameters."""
    sig = inspect.signature(info.factory)
    kwargs = dict(params)
    if "suite_dir" in sig.parameters:
        kwargs["suite_dir"] = suite_dir
    return info.factory(**kwargs)
