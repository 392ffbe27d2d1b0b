"""Suite specs: `suite.yaml` + `cases.jsonl` (+ schema files) in one folder.

Loading validates everything before any model work and reports every problem at once, each
naming the file, line (for JSONL) and field, with the fix. A suite's identity is the sha256 of
its files (README excluded), so an edited case is a different suite.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator

from harness.configmodel import ConfigModel, field_problems
from harness.errors import ConfigError
from harness.files import is_dir, is_file, load_yaml


class PromptSpec(ConfigModel):
    model_config = ConfigDict(extra="forbid")
    system: str | None = Field(None, description="system message (Jinja2 over the case: {{ input.field }})")
    user: str = Field(..., description="user message template, e.g. 'Ticket: {{ input.ticket }}'")


class GenerationSpec(ConfigModel):
    model_config = ConfigDict(extra="forbid")
    max_new_tokens: int = Field(64, gt=0, le=4096, description="greedy tokens generated per case")
    stop: list[str] = Field(default_factory=list, max_length=16,
                            description="generation ends where the output first contains one of these strings "
                                        "(the text excludes it), e.g. [\"\\n\\n\"]")

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, v: list[str]) -> list[str]:
        if any(not s for s in v):
            raise ValueError("a stop string must not be empty")
        return v


class CheckSpec(ConfigModel):
    model_config = ConfigDict(extra="allow")
    check: str = Field(..., description="registered check name, or module:function for a custom check")
    id: str | None = Field(None, description="metric name (defaults to the check name); must be unique in the suite")
    where: dict[str, Any] = Field(default_factory=dict, description="apply only to cases whose slices match")

    @property
    def metric(self) -> str:
        """The metric's name: `id`, else the check's name (a custom check's function name)."""
        return self.id or (self.check.rpartition(":")[2] if ":" in self.check else self.check)

    @property
    def params(self) -> dict:
        return dict(self.model_extra or {})


class SuiteSpec(ConfigModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]*$", description="suite name (lowercase, digits, _ and -)")
    version: str | int = Field(..., description="bumped when the cases or checks change meaning")
    description: str = ""
    prompt: PromptSpec
    generation: GenerationSpec = GenerationSpec()
    checks: list[CheckSpec] = Field(..., min_length=1)
    slices: list[str] = Field(default_factory=list, description="slice fields reported with n and intervals")
    min_pass_rate: float | None = Field(None, ge=0, le=1, description="session threshold for the pytest plugin")
    latency_sample: int = Field(6, ge=0, description="cases timed at batch 1 for latency percentiles")
    cases: str | None = Field(None, description="the cases file in this folder: JSONL, Parquet, CSV/TSV or JSON "
                              "(default: the one cases.* file there), or a hub dataset's file: "
                              "hf://datasets/org/name@revision/test.parquet")
    columns: dict[str, str] = Field(default_factory=dict, description="case fields read from other columns, "
                                    "dotted for nested fields: {id: qid, input.question: question, expected: answer}")


class Case(ConfigModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1)
    input: dict[str, Any] | str
    expected: dict[str, Any] | str | int | float | list | None = None
    slices: dict[str, str | int | bool] = Field(default_factory=dict)
    # a perfect answer (text, or an object for JSON answers): `harness suites validate --oracle`
    # scores it with the suite's checks, so a check that rejects it is found before any model runs
    reference: str | dict[str, Any] | list | None = None


@dataclass
class BoundCheck:
    spec: CheckSpec
    fn: Any
    needs: str

    def applies(self, case: Case) -> bool:
        for k, want in self.spec.where.items():
            have = case.slices.get(k)
            if (have not in want) if isinstance(want, list) else have != want:
                return False
        return True


@dataclass
class Suite:
    path: Path
    spec: SuiteSpec
    cases: list[Case]
    checks: list[BoundCheck]
    hash: str
    _templates: dict = field(default_factory=dict, repr=False)
    cases_path: Path | None = None  # the cases file (cases.jsonl unless suite.yaml names another)
    case_lines: dict[str, int] = field(default_factory=dict)  # case id -> its line (JSONL, CSV) or row (Parquet, JSON)
    sampled_from: int | None = None  # the suite's full case count when only a sample is evaluated

    @property
    def name(self) -> str:
        return self.spec.name

    def messages(self, case: Case, shots: list[dict] | None = None) -> list[dict]:
        """The chat for one case: system, optional few-shot turns, then the user message."""
        ctx = {"input": case.input, "case": case}
        out = []
        if self.spec.prompt.system:
            out.append({"role": "system", "content": self._templates["system"].render(ctx)})
        out += shots or []
        out.append({"role": "user", "content": self._templates["user"].render(ctx)})
        return out

    def needs_generation(self, case: Case) -> bool:
        return any(c.needs == "generation" and c.applies(case) for c in self.checks)


def _hub_commit(path: Path) -> str | None:
    from harness.data.hub import commit_of

    return commit_of(path)


def _hash_files(folder: Path, cases: Path | None = None) -> str:
    """The folder's files; a cases file outside it (a hub dataset's) by its bytes too."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name.lower() != "readme.md" and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(folder)).encode() + b"\0" + hashlib.sha256(p.read_bytes()).hexdigest().encode())
    if cases is not None and folder.resolve() not in cases.resolve().parents:
        h.update(b"cases\0" + hashlib.sha256(cases.read_bytes()).hexdigest().encode())
    return h.hexdigest()


def _read_spec(yml: Path, problems: list[str]):
    """(the validated spec or None, the raw YAML mapping or None)."""
    spec = raw = None
    try:
        raw = load_yaml(yml)
        spec = SuiteSpec.model_validate(raw if raw is not None else {})
    except ConfigError as e:
        problems += e.problems
    except ValidationError as e:
        problems += field_problems(str(yml), e, SuiteSpec)
    return spec, raw


def _read_cases(path: Path, problems: list[str], columns: dict | None = None) -> tuple[list[Case], dict[str, int]]:
    """(the valid cases, case id -> its line, or its row in Parquet and JSON arrays)."""
    from harness.data.tables import apply_format, is_table, iter_rows

    cases: list[Case] = []
    seen: dict[str, int] = {}
    at = "row" if is_table(path) and path.suffix.lower() not in (".csv", ".tsv") else "line"
    try:
        rows = list(iter_rows(path))
    except ConfigError as e:
        problems += e.problems
        return cases, seen
    for n, _, obj, problem in rows:
        if problem is None and columns:
            obj, problem = apply_format(obj, columns)
            problem = problem and problem.replace("data_format", "suite.yaml's columns")
        if problem:
            problems.append(f"{path}:{n}: {problem}" + (": one JSON object per line" if problem.startswith("not valid JSON") else ""))
            continue
        try:
            case = Case.model_validate(obj)
        except ValidationError as e:
            problems += field_problems(f"{path}:{n}", e, Case)
            continue
        if case.id in seen:
            problems.append(f"{path}:{n}: field 'id': duplicate id {case.id!r} (first on {at} {seen[case.id]}): ids must be unique")
        seen.setdefault(case.id, n)
        cases.append(case)
    if not cases and not any(str(path) in p for p in problems):
        problems.append(f"{path}: no cases: add one JSON object per line (or one row per case)")
    return cases, seen


def _cases_file(folder: Path, raw) -> tuple[Path, str | None]:
    """(the cases file, a problem or None): suite.yaml's `cases`, else the one cases.* file."""
    from harness.data.tables import DATA_SUFFIXES

    named = raw.get("cases") if isinstance(raw, dict) else None
    if isinstance(named, str) and named.startswith("hf://"):  # a hub dataset's file, fetched once
        from harness.data.hub import fetch

        try:
            return fetch(named), None
        except ConfigError as e:
            return folder / "cases.jsonl", f"{folder / 'suite.yaml'}: field 'cases': {e}"
    if isinstance(named, str) and named:
        p = folder / named
        if Path(named).is_absolute() or ".." in Path(named).parts:
            return p, f"{folder / 'suite.yaml'}: field 'cases': {named!r}: name a file inside the suite folder"
        if Path(named).suffix.lower() not in DATA_SUFFIXES:
            return p, f"{folder / 'suite.yaml'}: field 'cases': {named!r}: use a .jsonl, .parquet, .csv, .tsv or .json file"
        return p, None if is_file(p) else f"{p}: missing (suite.yaml's cases names it)"
    found = [folder / f"cases{s}" for s in DATA_SUFFIXES if is_file(folder / f"cases{s}")]
    if len(found) > 1:
        return found[0], (f"{folder}: {len(found)} cases files ({', '.join(p.name for p in found)}): keep one, or name it "
                          "in suite.yaml's cases")
    if not found:
        return folder / "cases.jsonl", (f"{folder / 'cases.jsonl'}: missing (a suite folder holds suite.yaml and "
                                        "cases.jsonl, or cases.parquet, .csv, .tsv, .json)")
    return found[0], None


def _check_specs(spec, raw) -> tuple[list[CheckSpec], list | None]:
    """The check specs and slice fields to bind: the spec's, or what of the raw YAML validates
    (so every problem shows at once even when the spec as a whole does not)."""
    if spec is not None:
        return spec.checks, spec.slices
    raw_checks = raw.get("checks") if isinstance(raw, dict) else None
    slice_fields = raw.get("slices") if isinstance(raw, dict) else None
    if isinstance(slice_fields, list):  # only the well-formed names: the rest is already a field error
        slice_fields = [f for f in slice_fields if isinstance(f, str)]
    check_specs = []
    for c in raw_checks if isinstance(raw_checks, list) else []:
        try:
            check_specs.append(CheckSpec.model_validate(c))
        except ValidationError:
            pass
    return check_specs, slice_fields


def _bind_checks(folder: Path, yml: Path, check_specs: list[CheckSpec], slice_fields, problems: list[str]) -> list[BoundCheck]:
    from harness.evals.checks.registry import available_checks, build_check, get_check

    checks: list[BoundCheck] = []
    metrics = [c.metric for c in check_specs]
    for i, c in enumerate(check_specs):
        at = f"{yml}: field 'checks.{i}"
        if metrics.count(c.metric) > 1:
            problems.append(f"{at}': metric name {c.metric!r} used twice: give each an `id`")
        try:
            info = get_check(c.check, folder)
        except ValueError as e:
            problems.append(f"{at}.check': check {c.check!r}: {e}")
            continue
        if info is None:
            problems.append(f"{at}.check': unknown check {c.check!r}: use one of {', '.join(available_checks())} or module:function")
            continue
        try:
            checks.append(BoundCheck(c, build_check(info, c.params, folder), info.needs))
        except (TypeError, ValueError, KeyError, OSError) as e:
            problems.append(f"{at}': check {c.check!r}: {e}")
        for k in c.where:
            if isinstance(slice_fields, list) and k not in slice_fields:
                problems.append(f"{at}.where': {k!r} is not a slice field of this suite (slices: {slice_fields})")
    return checks


def _cross_check(yml: Path, jsonl: Path, checks, check_specs, slice_fields, cases, seen, problems: list[str]) -> None:
    """What neither file shows alone: filters that match no case, slices no case has, cases a
    check cannot use."""
    for bc in checks:  # a filter that matches nothing gives a metric with no cases
        if bc.spec.where and cases and not any(bc.applies(c) for c in cases):
            have = {k: sorted({str(c.slices.get(k)) for c in cases}) for k in bc.spec.where}
            problems.append(f"{yml}: field 'checks.{check_specs.index(bc.spec)}.where': {bc.spec.where} matches no case "
                            f"(values in the cases: {have})")
    if isinstance(slice_fields, list) and cases:
        for f in slice_fields:
            if not any(f in c.slices for c in cases):
                problems.append(f"{yml}: field 'slices': no case has the slice {f!r} (add it to the cases' slices or drop it)")
    for bc in checks:  # a check that can say a case is unusable says so now, not mid-evaluation
        validate = getattr(bc.fn, "validate", None)
        for case in cases if validate else ():
            if bc.applies(case):
                try:
                    validate(case)
                except (ValueError, TypeError, KeyError) as e:
                    msg = e.args[0] if isinstance(e, KeyError) and e.args else e
                    problems.append(f"{jsonl}:{seen[case.id]}: {msg} (check {bc.spec.metric!r})")


def _templates(spec, yml: Path, jsonl: Path, cases, problems: list[str]) -> dict:
    """The prompt templates, compiled in a sandbox and rendered once for every case."""
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    templates = {}
    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
    for key in ("system", "user"):
        src = getattr(spec.prompt, key)
        if src is None:
            continue
        try:
            templates[key] = env.from_string(src)
        except (TemplateError, RecursionError) as e:  # RecursionError: nested past the parser's depth
            problems.append(f"{yml}: field 'prompt.{key}': template error: {str(e) or type(e).__name__}")
    for case in cases:
        for key, tpl in templates.items():
            try:
                tpl.render({"input": case.input, "case": case})
            except (TemplateError, TypeError, ValueError, RecursionError) as e:
                problems.append(f"{jsonl}: case {case.id!r}: prompt.{key} cannot be rendered: {e}")
    return templates


def load_suite(path: str | Path) -> Suite:
    """Load and validate a suite folder; raises ConfigError listing every problem."""
    folder = Path(path)
    yml = folder / "suite.yaml"
    if not is_dir(folder):
        raise ConfigError(f"suite folder {str(folder)!r} does not exist")
    if not is_file(yml):
        raise ConfigError([f"{yml}: missing (a suite folder holds suite.yaml and cases.jsonl)"], title=f"invalid suite {folder}")
    problems: list[str] = []
    spec, raw = _read_spec(yml, problems)
    jsonl, missing = _cases_file(folder, raw)
    if missing:
        raise ConfigError([*problems, missing], title=f"invalid suite {folder}")
    columns = spec.columns if spec is not None else None
    cases, seen = _read_cases(jsonl, problems, columns)
    check_specs, slice_fields = _check_specs(spec, raw)
    checks = _bind_checks(folder, yml, check_specs, slice_fields, problems)
    _cross_check(yml, jsonl, checks, check_specs, slice_fields, cases, seen, problems)
    templates = _templates(spec, yml, jsonl, cases, problems) if spec is not None else {}
    if problems:
        raise ConfigError(problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else []), title=f"invalid suite {folder}")
    return Suite(folder.resolve(), spec, cases, checks, _hash_files(folder, jsonl), templates,
                 # a hub file (harness.data.hub.commit_of) stays named by its snapshot (commit), not the blob it links to
                 cases_path=jsonl.absolute() if _hub_commit(jsonl) else jsonl.resolve(),
                 case_lines=seen)


def find_suites(paths: list[str | Path]) -> list[Path]:
    """Suite folders named directly, or found one level below a folder of suites."""
    out: list[Path] = []
    for p in map(Path, paths):
        if is_file(p / "suite.yaml"):
            out.append(p)
        elif is_dir(p):
            found = sorted(d for d in p.iterdir() if (d / "suite.yaml").is_file())
            if not found:
                raise ConfigError(f"{p}: no suite.yaml here or in its sub-folders")
            out += found
        else:
            raise ConfigError(f"suite folder {str(p)!r} does not exist")
    return out
