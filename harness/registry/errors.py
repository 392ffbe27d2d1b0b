"""The registry's exceptions. All are `HarnessError`s, so the CLI prints them on one line and
exits with code 2; each message names the run, channel, adapter or file and what to do next."""

from __future__ import annotations

from harness.errors import HarnessError


class RegistryError(HarnessError):
    """The registry cannot do what was asked (bad input, locked file, newer schema)."""


class NotFound(RegistryError):
    """A run, channel or adapter that the registry does not hold."""


class PromotionRefused(RegistryError):
    """A promotion without a passing gate or onto another base, or `--force` without a reason."""


class RollbackRefused(RegistryError):
    """A rollback with nothing to roll back to, or to an adapter that was deleted."""


class TamperedAdapter(RegistryError):
    """A stored adapter whose files no longer match its manifest; it is never loaded."""

    def __init__(self, message: str, adapter_hash: str, problems: list[str], file: str | None = None):
        super().__init__(message)
        self.adapter_hash = adapter_hash
        self.problems = problems
        self.file = file
