"""The project's own exceptions. A `HarnessError` is a user error: the CLI prints its message
on one line and exits with code 2, no traceback."""

from __future__ import annotations


class HarnessError(Exception):
    """A user-facing error: bad input, bad config, missing file. Exit code 2."""

    exit_code = 2


class ModelSpecError(HarnessError):
    """A model spec that does not resolve to loadable weights."""


class ConfigError(HarnessError):
    """A config or suite file that fails validation; the message lists every problem."""

    def __init__(self, problems: list[str] | str, title: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.title = title
        head = f"{title}:\n" if title else ""
        if len(self.problems) == 1 and not title:
            msg = self.problems[0]
        else:
            msg = head + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(msg)


class MissingExtra(HarnessError):
    """An optional dependency is missing; the message names what to install."""
