"""`harness run ...` in this process, killing itself with SIGKILL at one chosen point, so a test
can put a kill -9 exactly where a random one would rarely land.

    python -m tests.pipeline.killer WHERE -- run CONFIG | run --resume RUN_ID

WHERE is `Class.method:before`, `Class.method:after` or `Class.method:sleep` (hold there for 60 s,
to be found running) for Pipeline and Registry methods.
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
    cls_name, method = target.split(".")
    from harness import pipeline, registry
    from harness.cli import main as cli

    cls = {"Pipeline": pipeline.Pipeline, "Registry": registry.Registry}[cls_name]
    original = getattr(cls, method)

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

    setattr(cls, method, wrapped)
    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
