"""`harness run`: one training run wrapped in evidence, stage by stage.

data checks -> baseline eval (cached) -> gate plan (which rules the cases can decide) -> train ->
adapter smoke test -> store adapter -> (checkpoint selection) -> candidate eval (whole, or
sequential: in chunks until the gate's verdict is settled) -> paired comparison + gate ->
registry record -> HTML report -> promotion, only if the gate passed.

Each stage is a function of the run context (`context.RunContext`) in `training`, `evaluation`
or `decision`, returning a frozen record (`records`); `run` runs them in order and keeps the
records in `$HARNESS_HOME/runs/<run>/state.json`. A crash or Ctrl-C marks the run `failed` /
`interrupted` (never promoted) and `harness run --resume RUN` continues after the last finished
stage (training resumes from its last checkpoint).
"""

from harness.pipeline.records import STAGES, Records
from harness.pipeline.run import print_summary, resume, run
from harness.pipeline.state import RUN_ID_RE, RunFailed, RunState, Terminated
from harness.pipeline.training import TRAINER_STATE, adapter_files

__all__ = ["RUN_ID_RE", "STAGES", "TRAINER_STATE", "Records", "RunFailed", "RunState", "Terminated", "adapter_files",
           "print_summary", "resume", "run"]
