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

from harness.catalog import Catalog

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


REGISTRY: Catalog[CheckInfo] = Catalog("check")
_entry_points_loaded = False


def check(name: str, needs: str = "generation"):
    """Register a check factory under `name`. `needs="loglik"` for checks scored by
    log-likelihood: their callable also has `continuations(case) -> list[str]`."""

    return REGISTRY.decorator(name, lambda factory: CheckInfo(name, factory, needs, (inspect.getdoc(factory) or "").split("\n")[0]))


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def get_check(name: str, suite_dir=None) -> CheckInfo | None:
    """A registered check by name, or a custom one: `package.module:function` (importable), or
    `./file.py:function`, a file in the suite's folder. None for an unknown name; ValueError
    saying why for a custom check that cannot be loaded."""
    import harness.evals.checks  # noqa: F401  (registers the built-in checks)

    if name in REGISTRY:
        return REGISTRY[name]
    if ":" in name:
        module, _, attr = name.rpartition(":")
        if module.endswith(".py"):
            mod = _load_file(module, suite_dir)
        else:
            try:
                mod = importlib.import_module(module)
            except ImportError as e:
                raise ValueError(f"cannot import module {module!r} ({e}): it must be on PYTHONPATH, or put the file in the "
                                 f"suite's folder and write `check: ./{module.rsplit('.', 1)[-1]}.py:{attr}`") from None
        fn = getattr(mod, attr, None)
        if not callable(fn):
            raise ValueError(f"{module} has no function {attr!r}")
        needs = getattr(fn, "harness_needs", "generation")
        return CheckInfo(name, fn, needs, (inspect.getdoc(fn) or "").split("\n")[0])
    _load_entry_points()
    return REGISTRY.get(name)


def _load_file(rel: str, suite_dir):
    """A check module in the suite's folder, loaded under a name of its own (no sys.path change)."""
    import hashlib
    import importlib.util
    from pathlib import Path

    if suite_dir is None:
        raise ValueError(f"{rel!r}: a file check is named relative to the suite's folder")
    base = Path(suite_dir).resolve()
    path = (base / rel).resolve()
    if base not in path.parents or not path.is_file():
        raise ValueError(f"{rel!r}: no such file in the suite's folder {base} (a file check must live inside it)")
    key = "harness_suite_check_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(key, path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # the user's module: report it as theirs, with its line
        import traceback

        where = traceback.extract_tb(e.__traceback__)[-1]
        raise ValueError(f"{rel}:{where.lineno}: {type(e).__name__}: {e}") from None
    return mod


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


def describe_checks() -> list[dict]:
    """Every registered check: name, what it needs, its parameters with defaults, and its help
    (the factory's docstring): the source of `harness checks list` and the README's reference."""
    out = []
    for name in available_checks():
        info = REGISTRY[name]
        params = []
        for p in inspect.signature(info.factory).parameters.values():
            if p.name == "suite_dir":
                continue
            ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", str(p.annotation))
            params.append({"name": p.name, "type": ann, "required": p.default is inspect.Parameter.empty,
                           "default": None if p.default is inspect.Parameter.empty else p.default})
        doc = " ".join((inspect.getdoc(info.factory) or "").split("\n\n")[0].split())
        out.append({"check": name, "needs": info.needs, "params": params, "help": doc})
    return out


def checks_markdown() -> str:
    """The check reference as a Markdown table (generated; the README holds a copy, tested equal)."""
    rows = ["| check | parameters (default) | what it checks |", "| --- | --- | --- |"]
    for d in describe_checks():
        ps = ", ".join(f"`{p['name']}`" + ("" if p["required"] else f" ({p['default']!r})") for p in d["params"]) or "-"
        extra = " Scored by log-likelihood (no generation)." if d["needs"] == "loglik" else ""
        text = d["help"].replace("|", "\\|")
        rows.append(f"| `{d['check']}` | {ps} | {text}{extra} |")
    return "\n".join(rows)
