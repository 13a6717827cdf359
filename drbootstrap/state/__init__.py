"""Where an environment's state lives, and who may change it: the spec's `state:` block.

`local` (the default): the state directory, one command at a time by flock (environment_lock.py).
`s3`: a bucket on any S3 API is the truth (remote.py) and the state directory a working copy; one
command at a time by a fenced lease (lease.py), so the state survives the loss of the machine (and
the site) that ran the last command, and a run that lost its lease cannot write another entry.

    with hold_state(spec, paths, "up", take_over=False) as session:
        journal = Journal.at(paths)      # the working copy, as the remote holds it
        session.attach(journal)          # every write goes to the remote too, fenced

A command that changes more than one site (failover, which runs `up` at the target and fences the
old site) holds the environment once and passes its session on: `hold_state(..., within=session)`
then takes the site's own lock (local) or works under the same lease (s3) instead of asking again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from drbootstrap.environment_lock import hold_environment
from drbootstrap.errors import DrbError
from drbootstrap.journal import Journal
from drbootstrap.paths import EnvironmentPaths
from drbootstrap.spec.models import EnvironmentSpec
from drbootstrap.spec.operations import StateSpec

if TYPE_CHECKING:  # the s3 modules (boto3) are imported only when the state is in s3
    from drbootstrap.state.lease import Lease
    from drbootstrap.state.remote import JournalReplica, RemoteState


class StateSession(Protocol):
    taken_over: str | None  # a line naming the holder this command replaced (it died without releasing)

    def attach(self, journal: Journal) -> None: ...

    def save_report(self, files: list[Path], started_at: float) -> None: ...


@dataclass
class _LocalSession:
    taken_over: str | None = None

    def attach(self, journal: Journal) -> None:
        pass

    def save_report(self, files: list[Path], started_at: float) -> None:
        pass


def state_settings(spec: EnvironmentSpec, override: str | None = None) -> StateSpec:
    """The spec's `state:` block, with the command line's --state over it: `local`, `s3` (the spec's
    s3 settings) or `s3://BUCKET[/PREFIX]` (the spec's other settings: endpoint, keys, lease)."""
    settings = spec.state
    if override is None:
        return settings
    if override == "local":
        return StateSpec()
    if override == "s3" or override.startswith("s3://"):
        update: dict[str, object] = {"backend": "s3"}
        if override.startswith("s3://"):
            bucket, _, prefix = override.removeprefix("s3://").partition("/")
            update.update(bucket=bucket, prefix=prefix.strip("/") or settings.prefix)
        try:
            return StateSpec.model_validate({**settings.model_dump(exclude_unset=True), **update,
                                             "credentials": settings.credentials,
                                             "encryption_key": settings.encryption_key})
        except ValueError as error:
            first = str(error).splitlines()[1:2] or [str(error)]
            raise DrbError(f"--state {override}: {first[0].strip()}",
                           hint="an s3 state needs the spec's state: block to name encryption_key "
                                "(and endpoint, credentials where not AWS's defaults)") from None
    raise DrbError(f"--state {override}: not local, s3 or s3://BUCKET/PREFIX", hint="e.g. --state s3://drb-state/prod")


@contextmanager
def hold_state(spec: EnvironmentSpec, paths: EnvironmentPaths, command: str, *, override: str | None = None,
               take_over: bool = False, lock: Path | None = None,
               within: StateSession | None = None) -> Iterator[StateSession]:
    """Hold the environment for COMMAND (flock or lease) with its working copy made from the truth;
    EnvironmentBusy names the holder when another command has it. LOCK: another lock file than the
    site's (failover's own). WITHIN: the session of a command that already holds the environment
    (its lease is used, not taken again; a local site's own lock is still taken)."""
    settings = state_settings(spec, override)
    if settings.backend == "local":
        with hold_environment(paths, command, lock=lock) as held:
            yield _LocalSession(f"took over the lock of {held.taken_over.describe()}, which is no longer running"
                                if held.taken_over else None)
        return
    from drbootstrap.state.lease import take_lease
    from drbootstrap.state.remote import RemoteState

    remote = RemoteState(settings, paths)
    if within is not None:
        if not isinstance(within, _RemoteSession):
            raise DrbError(f"environment {paths.environment}: {command} holds it with local state, but this "
                           "site's state is s3", hint="give every site the spec's one state: block")
        yield _RemoteSession(remote, remote.replica(within.lease, remote.restore_working_copy()), within.lease)
        return
    lease = take_lease(remote.store, command, seconds=settings.lease_seconds, take_over=take_over,
                       take_expired=settings.take_over_expired)
    try:
        lease.start_renewing()  # from now: fetching many keys must not let it lapse
        restored = remote.restore_working_copy()
        replica = remote.replica(lease, restored)
        taken = lease.taken_over
        yield _RemoteSession(remote, replica, lease,
                             f"took over the expired lease of {taken.describe()} (now generation {lease.generation})"
                             if taken else None)
    finally:
        lease.release()


@dataclass
class _RemoteSession:
    remote: RemoteState
    replica: JournalReplica
    lease: Lease
    taken_over: str | None = None

    def attach(self, journal: Journal) -> None:
        journal.replica = self.replica

    def save_report(self, files: list[Path], started_at: float) -> None:
        self.remote.push_reports(files, started_at)


@dataclass
class StateView:
    """What `status` shows of the state: the journal as the truth holds it, and who holds the environment."""

    journal: Journal
    holder: str  # "" for local state


def read_state(spec: EnvironmentSpec, paths: EnvironmentPaths, override: str | None = None) -> StateView:
    """The journal and holder, without holding the environment (works while another command runs)."""
    settings = state_settings(spec, override)
    if settings.backend == "local":
        return StateView(Journal.at(paths), "")
    from drbootstrap.journal import JournalData, parse_journal
    from drbootstrap.state.lease import read_lease
    from drbootstrap.state.remote import RemoteState

    remote = RemoteState(settings, paths)
    holder = read_lease(remote.store).describe()
    restored = remote.restore_working_copy(read_only=True)
    if restored.body is None:
        return StateView(Journal(paths, JournalData(environment=paths.environment)), holder)
    return StateView(Journal(paths, parse_journal(restored.body, f"{remote.store.where}/journal.json")), holder)


__all__ = ["StateSession", "StateView", "hold_state", "read_state", "state_settings"]
