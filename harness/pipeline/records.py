"""What each stage of a run hands on: one small frozen record per stage.

A stage function takes the run context and returns its record; later stages, the report and the
review read these records (attributes, not dict keys). The run state (`runs/<run>/state.json`,
`done`) is the records serialised, each as the mapping it always was, so `--resume` reloads them
and older state files still read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class StageRecord:
    seconds: float = 0.0  # wall time of the stage

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict | None):
        """The record from its serialised mapping; keys it does not know are ignored, missing ones
        take their defaults (a state file written by an older version)."""
        d = d or {}
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def timed(self, seconds: float):
        return dataclasses.replace(self, seconds=round(seconds, 2))


@dataclass(frozen=True)
class DataChecked:
    """One data file as the data checks saw it."""

    path: str
    hash: str
    rows: int
    blocking: list = field(default_factory=list)
    report: dict | None = None


@dataclass(frozen=True)
class DataCheckResult(StageRecord):
    train_data: DataChecked | None = None
    validation_data: DataChecked | None = None
    override_reason: str | None = None

    def to_dict(self) -> dict:
        out = {"seconds": self.seconds}
        for key in ("train_data", "validation_data"):
            f = getattr(self, key)
            if f is not None:
                out[key] = dataclasses.asdict(f)
        if self.override_reason:
            out["override_reason"] = self.override_reason
        return out

    @classmethod
    def from_dict(cls, d: dict | None):
        d = d or {}
        files = {k: DataChecked(**{f.name: d[k].get(f.name) for f in fields(DataChecked) if f.name in d[k]})
                 for k in ("train_data", "validation_data") if isinstance(d.get(k), dict)}
        return cls(seconds=d.get("seconds", 0.0), override_reason=d.get("override_reason"), **files)


@dataclass(frozen=True)
class BaselineResult(StageRecord):
    results: str = ""  # the base model's results folder (the cache)
    cached: bool = False


@dataclass(frozen=True)
class PlanResult(StageRecord):
    plan: str | None = None  # plan.json in the run folder; None with eval.plan: off
    undecidable: list = field(default_factory=list)


@dataclass(frozen=True)
class TrainResult(StageRecord):
    output_dir: str = ""
    checkpoints: list = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    method: str = ""


@dataclass(frozen=True)
class SmokeResult(StageRecord):
    report: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StoredAdapter(StageRecord):
    adapter_hash: str = ""
    path: str = ""
    from_checkpoint: str | None = None  # set when checkpoint selection kept an earlier checkpoint


@dataclass(frozen=True)
class SelectionResult(StageRecord):
    selected: str = "final"
    why: str = ""
    scores: dict | None = None
    on: str | None = None
    excluded: dict | None = None  # suite -> case ids the checkpoint was chosen on (the gate leaves them out)
    stored: StoredAdapter | None = None  # the selected checkpoint, stored, when it is not the final adapter

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["stored"] = self.stored.to_dict() if self.stored else None
        return out

    @classmethod
    def from_dict(cls, d: dict | None):
        d = dict(d or {})
        stored = d.pop("stored", None)
        rec = super().from_dict(d)
        return dataclasses.replace(rec, stored=StoredAdapter.from_dict(stored) if stored else None)


@dataclass(frozen=True)
class CandidateResult(StageRecord):
    results: str = ""
    baseline_timed: str | None = None  # the run's copy of the baseline with paired latency
    sequential: dict | None = None  # where a sequential evaluation stopped and why
    runs_on: str = ""


@dataclass(frozen=True)
class ArmsResult(StageRecord):
    results: dict = field(default_factory=dict)  # arm -> results folder
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult(StageRecord):
    passed: bool = False
    decision: str = ""  # decision.json
    comparison: str = ""  # comparison.json
    summary_md: str = ""
    record: dict = field(default_factory=dict)  # the decision itself, for the registry


@dataclass(frozen=True)
class RecordResult(StageRecord):
    adapter_hash: str = ""


@dataclass(frozen=True)
class ReportResult(StageRecord):
    report: str | None = None


@dataclass(frozen=True)
class PromoteResult(StageRecord):
    promoted: bool = False
    why: str = ""
    channel: str | None = None
    entry: dict | None = None


RECORDS: dict[str, type[StageRecord]] = {
    "data_checks": DataCheckResult, "baseline": BaselineResult, "plan": PlanResult, "train": TrainResult,
    "smoke_test": SmokeResult, "store_adapter": StoredAdapter, "select_checkpoint": SelectionResult,
    "candidate": CandidateResult, "arms": ArmsResult, "gate": GateResult, "record": RecordResult,
    "report": ReportResult, "promote": PromoteResult,
}
STAGES = tuple(RECORDS)


@dataclass
class Records:
    """The records of the stages a run has finished, by stage name."""

    done: dict[str, StageRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, done: dict | None) -> Records:
        return cls({k: RECORDS[k].from_dict(v) for k, v in (done or {}).items() if k in RECORDS})

    def dump(self) -> dict:
        return {k: v.to_dict() for k, v in self.done.items()}

    def __contains__(self, stage: str) -> bool:
        return stage in self.done

    def get(self, stage: str):
        return self.done.get(stage)

    @property
    def adapter(self) -> StoredAdapter | None:
        """The adapter the run evaluates and promotes: the selected checkpoint's, else the final one."""
        sel = self.done.get("select_checkpoint")
        if sel is not None and sel.stored is not None:
            return sel.stored
        return self.done.get("store_adapter")
