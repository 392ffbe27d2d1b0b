"""A run's saved state (`runs/<run>/state.json`): its id, config and the records of its finished stages."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.paths import runs_root
from harness.pipeline.records import Records

RUN_ID_RE = re.compile(r"run-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")


class RunFailed(HarnessError):
    """A stage of the wrapped run failed; the run is marked failed and never promoted."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what CI runners and `kill` send), handled like Ctrl-C: the run is marked
    `interrupted`, never promoted, and can be resumed."""


@dataclass
class RunState:
    run_id: str
    folder: Path
    config_path: str
    records: Records = field(default_factory=Records)

    def save(self) -> None:
        tmp = self.folder / "state.tmp"
        tmp.write_text(json.dumps({"run_id": self.run_id, "config_path": self.config_path, "done": self.records.dump()},
                                  indent=1, default=str))
        os.replace(tmp, self.folder / "state.json")

    @classmethod
    def load(cls, run_id: str) -> RunState:
        if not RUN_ID_RE.fullmatch(run_id or ""):
            raise HarnessError(f"{run_id!r} is not a run id (like run-20260101-120000-a1b2c3): `harness runs` lists them")
        folder = runs_root() / run_id
        try:
            s = json.loads((folder / "state.json").read_text())
        except (OSError, ValueError):
            raise HarnessError(f"run {run_id!r} has no saved state in {folder}: check `harness runs`") from None
        return cls(s["run_id"], folder, s["config_path"], Records.load(s["done"]))
