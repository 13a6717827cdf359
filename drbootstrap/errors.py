"""The one error hierarchy. Every error a user can cause says what, where and how to fix.

The CLI prints `str(error)` as a single line and exits with `error.exit_status`; anything that
is not a `DrbError` is a bug and gets ExitStatus.BUG.
"""

from __future__ import annotations

from drbootstrap.exit_status import ExitStatus


class DrbError(Exception):
    """Root of every error drbootstrap raises on purpose."""

    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class SpecError(DrbError):
    """One or more problems in an input file. `problems` holds each located one-line message."""

    exit_status = ExitStatus.INVALID_SPEC

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return self.message


class PrerequisiteError(DrbError):
    """The machine lacks something: root, a binary, a free address range."""

    exit_status = ExitStatus.PREREQUISITE


class ProviderError(DrbError):
    """The cloud (or the local cloud) failed or refused."""

    exit_status = ExitStatus.PROVIDER


class NotFoundError(DrbError):
    exit_status = ExitStatus.NOT_FOUND


class MessagingError(DrbError):
    """Broker unreachable, request refused, nothing answered."""

    exit_status = ExitStatus.MESSAGING


class SecurityError(MessagingError):
    """A message failed signature, TTL, replay, size or authorisation checks."""


class StateWriteError(DrbError):
    """The state directory refused a write (disk full, read-only); what was written before stands."""

    exit_status = ExitStatus.STATE


class FencedError(DrbError):
    """A newer holder took the environment's lease: this run may not write another journal entry."""

    exit_status = ExitStatus.FENCED


class NotConfirmed(DrbError):
    """A destructive command was not confirmed: nothing was changed."""

    exit_status = ExitStatus.NOT_CONFIRMED


class BackupError(DrbError):
    """No backup matches what was asked (--as-of, --backup, none yet), or every candidate failed verification."""

    exit_status = ExitStatus.BACKUP


class DrillFailed(DrbError):
    """A fire drill failed: a check failed, recovery missed its RTO target, or it was cut short."""

    exit_status = ExitStatus.DRILL_FAILED


class WaitTimeoutError(DrbError):
    """Waited as long as allowed for a node, a service or a reply."""

    exit_status = ExitStatus.TIMEOUT


class PartialFailure(DrbError):
    """A run completed for some nodes and failed for others."""

    exit_status = ExitStatus.PARTIAL


class NotSwitched(DrbError):
    """A failover did not switch the public DNS records (the target site failed verification)."""

    exit_status = ExitStatus.NOT_SWITCHED
