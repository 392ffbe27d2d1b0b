"""Terminal output: one rich console on stderr for progress, stdout kept for results."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


def console():
    from rich.console import Console

    global _CONSOLE
    if _CONSOLE is None:
        # wide when logged (CI, pipes), so gate tables are not folded into 80 columns
        _CONSOLE = Console(stderr=True, highlight=False) if sys.stderr.isatty() else Console(stderr=True, highlight=False, width=180)
    return _CONSOLE


_CONSOLE = None


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with a message while something slow and unmeasurable runs."""
    if not sys.stderr.isatty():
        console().print(f"[dim]{message}...[/dim]")
        yield
        return
    with console().status(message):
        yield


@contextlib.contextmanager
def progress(description: str, total: int, enabled: bool = True) -> Iterator:
    """A progress bar; yields a function `advance(n)`."""
    if not enabled or total <= 0:
        yield lambda n=1: None
        return
    if not sys.stderr.isatty():
        yield _log_progress(description, total)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console(),
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def stdout_console():
    """A console for result tables on stdout; wide when piped so cells are never cut."""
    from rich.console import Console

    return Console(highlight=False) if sys.stdout.isatty() else Console(width=180, highlight=False)


def _log_progress(description: str, total: int):
    """Progress for logs (CI, pipes): one line at every tenth of the work, with elapsed time."""
    import time

    state = {"done": 0, "next": max(1, total // 10), "t0": time.perf_counter()}

    def advance(n: int = 1) -> None:
        state["done"] += n
        if state["done"] >= state["next"] or state["done"] >= total:
            el = time.perf_counter() - state["t0"]
            console().print(f"[dim]{description}: {state['done']}/{total} ({el:.0f} s)[/dim]")
            state["next"] = state["done"] + max(1, total // 10)

    return advance
