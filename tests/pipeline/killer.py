"""`harness run ...` in this process, killing itself with SIGKILL at one chosen point, so a test
can put a kill -9 exactly where a random one would rarely land.

    python -m tests.pipeline.killer WHERE -- run CONFIG | run --resume RUN_ID

WHERE is `Target.name:before`, `Target.name:after` or `Target.name:sleep` (hold there for 60 s,
to be found running): `stage.<stage>` for a stage function of the run, `Registry.<method>`.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time


def main() -> int:
    where, argv = sys.argv[1], sys.argv[3:]
    target, when = where.rsplit(":", 1)
    kind, name = target.split(".")
    from harness import registry
    from harness.cli import main as cli
    from harness.pipeline.run import STAGE_FUNCTIONS

    original = STAGE_FUNCTIONS[name] if kind == "stage" else getattr(registry.Registry, name)

    @functools.wraps(original)
    def wrapped(*a, **k):
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        if when == "sleep":
            print("holding", file=sys.stderr, flush=True)
            time.sleep(60)
        out = original(*a, **k)
        if when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    if kind == "stage":
        STAGE_FUNCTIONS[name] = wrapped
    else:
        setattr(registry.Registry, name, wrapped)
    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
