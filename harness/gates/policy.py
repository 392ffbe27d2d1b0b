"""Gate policies: YAML rules over metric names (with wildcards), validated up front.

A rule names a metric pattern (`general/*`, `*/latency_p50`) and one or more tests:
`min` / `max` (absolute bounds on the candidate's estimate), `max_drop` (non-inferiority,
judged on the interval's lower bound), `must_improve` (superiority: the interval excludes 0),
`max_ratio` (latency and token counts, judged on the ratio's interval). `slices` applies the
test to every slice value with at least `min_n` cases, Holm-corrected across slices.

`extends: other.yaml` (relative to the file; `default` for the shipped policy) starts from another
policy: its rules come first, this file's rules are added after them, and any other field this
file sets replaces the one it extends.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from harness.configmodel import ConfigModel, field_problems
from harness.errors import ConfigError
from harness.files import config_path, is_file, load_mapping

DEFAULT_POLICY = Path(__file__).with_name("default_policy.yaml")
TESTS = ("min", "max", "max_drop", "must_improve", "max_ratio", "beats_arm")


def _set(v) -> bool:
    # 0.0 is a real bound (min: 0.0); only None and must_improve=False mean "no test"
    return v is not None and v is not False


class Rule(ConfigModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(..., description="metric name or pattern, suite/metric, wildcards * and ?")
    min: float | None = Field(None, ge=0, description="candidate estimate must be at least this")
    max: float | None = Field(None, ge=0, description="candidate estimate must be at most this")
    max_drop: float | None = Field(None, ge=0, le=1, description="non-inferiority margin on the paired delta's lower bound")
    must_improve: bool = Field(False, description="superiority: the delta's interval must exclude 0")
    max_ratio: float | None = Field(None, gt=0, description="upper bound on candidate/baseline (latency, tokens)")
    beats_arm: str | None = Field(None, description="candidate must be non-inferior (max_drop, default 0) to this arm")
    slices: list[str] = Field(default_factory=list, description="apply per value of these slice fields")
    min_n: int = Field(20, ge=1, description="slices with fewer cases are skipped")
    on_insufficient: Literal["fail", "pass"] | None = Field(None, description="override the policy default")
    note: str = Field("", description="why this rule exists (shown in reports)")
    flip_rate: float | None = Field(None, ge=0, le=1, description="planning: the share of cases expected to change "
                                    "verdict for this metric (default: the policy's plan.flip_rate)")

    @model_validator(mode="after")
    def _one_test(self):
        if not any(_set(getattr(self, t)) for t in TESTS):
            raise ValueError(f"a rule needs at least one test: {', '.join(TESTS)}")
        if "/" not in self.metric:
            raise ValueError(f"metric {self.metric!r} must be suite/metric (e.g. general/* or ticket_triage/json_valid)")
        return self

    def label(self) -> str:
        parts = [self.metric]
        for t in TESTS:
            v = getattr(self, t)
            if _set(v):
                parts.append(t if v is True else f"{t} {v}")
        if self.slices:
            parts.append(f"per {'/'.join(self.slices)} (n>={self.min_n})")
        return " ".join(parts)

    def pattern(self) -> re.Pattern:
        return re.compile("^" + re.escape(self.metric).replace(r"\*", "[^/]*").replace(r"\?", ".") + "$")


class PlanSettings(ConfigModel):
    """What `harness gate plan` assumes where the baseline cannot tell it."""

    model_config = ConfigDict(extra="forbid")
    power: float = Field(0.8, gt=0, lt=1, description="chance of a decision the plan asks each rule to have")
    flip_rate: float = Field(0.10, ge=0, le=1, description="share of cases a candidate as good as the baseline flips "
                             "(either way); LoRA adapters on the shipped suites flipped 10-13 % of general cases")
    improvement: float = Field(0.10, gt=0, le=1, description="the gain a must_improve or beats_arm rule is planned to show")
    base_rate: float = Field(0.5, ge=0, le=1, description="a metric's baseline rate when no baseline results are given")


class Policy(ConfigModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "policy"
    description: str = ""
    confidence: float = Field(0.95, gt=0.5, lt=1, description="two-sided confidence of every interval")
    on_insufficient: Literal["fail", "pass"] = Field("fail", description="what insufficient_evidence means for the gate")
    required: list[str] = Field(default_factory=list, description="suites whose results must be present")
    rules: list[Rule] = Field(..., min_length=1)
    plan: PlanSettings = Field(default_factory=PlanSettings, description="assumptions of `harness gate plan`")


def _read(p: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A policy file's YAML with its `extends` chain resolved (rules concatenated, fields overridden)."""
    if not is_file(p):
        via = f" (extended by {seen[-1]})" if seen else ""
        raise ConfigError(f"policy file {str(p)!r} does not exist{via}")
    raw = load_mapping(p, "a policy (name, rules, ...)")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"{p}: field 'extends': a policy file path (relative to this file) or 'default'")
    parent_path = DEFAULT_POLICY if parent == "default" else config_path(p.parent, parent)
    if parent_path in seen + (p.resolve(),):
        raise ConfigError(f"{p}: field 'extends': {parent!r} extends this file again (a cycle)")
    merged = _read(parent_path, seen + (p.resolve(),))
    rules = list(merged.get("rules") or []) + list(raw.pop("rules", None) or [])
    merged.update(raw)
    merged["rules"] = rules
    return merged


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file (the shipped default when None); every error at once."""
    p = Path(path) if path else DEFAULT_POLICY
    raw = _read(p)
    try:
        return Policy.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(field_problems(str(p), e, Policy), title=f"invalid gate policy {p}") from None
