"""The dumps agent: application backups taken and restored on the node, for the controller.

A request names a dump, never a command: the commands come from the agent's configuration,
written at launch from the spec's `dumps:`. `take` runs the dump command with its output in a
0600 spool file on the node (so a failing or timed-out command never reaches the bucket, and the
digest and size are known before the upload starts); `read` hands the controller one chunk at a
time, which it streams to the bucket (the node never holds the bucket's credentials); `discard`
removes the spool (one a dead controller left is removed by the next `take` a day later).
`restore` fetches an object from a short-lived URL the controller gives (presigned, or one-shot),
refuses it unless its sha256 and size are the expected ones, then feeds it to the restore
command's stdin.

The commands' output tail goes back in the reply; the URL never appears in a reply or a log.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drbootstrap.agent.registry import ActionFailed, Input, RpcAgent, action
from drbootstrap.messaging.envelope import Request, StatusCode

if TYPE_CHECKING:
    from drbootstrap.agent.config import DumpCommandConfig

MAX_READ_BYTES = 128 * 1024  # one chunk: base64 in a reply stays under the 256 KiB frame limit
OUTPUT_TAIL_LINES = 20
_JOB = r"[0-9a-f]{32}"
_NAME = r"[a-z0-9][a-z0-9-]{0,62}"
_SHA256 = r"[0-9a-f]{64}"


class DumpsAgent(RpcAgent):
    name = "dumps"
    description = "Take application dumps for the bucket (spooled, read in chunks) and restore them by digest."

    @action("Run a dump command; its output is kept on the node until read", slow=True,
            name=Input("string", required=True, pattern=_NAME))
    def take(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        dump = self._dump(data["name"])
        job = secrets.token_hex(16)
        spool = self._spool(job)
        _remove_stale(spool.parent)
        with _private_file(spool) as out:
            status, tail = _run(dump.command, dump.timeout, self._root(), stdout=out)
        if status != 0:
            spool.unlink(missing_ok=True)
            why = f"timed out after {dump.timeout:.0f} s" if status == 124 else f"exited {status}"
            raise ActionFailed(StatusCode.ABORTED, f"dump {data['name']}: the command {why}",
                               {"exit_status": status, "output": tail})
        digest, size = _sha256_of(spool)
        return {"job": job, "size": size, "sha256": digest, "output": tail}

    @action("One chunk of a dump taken earlier",
            job=Input("string", required=True, pattern=_JOB), offset=Input("integer", required=True),
            length=Input("integer", required=True))
    def read(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        spool = self._spool(data["job"])
        length = max(0, min(int(data["length"]), MAX_READ_BYTES))
        try:
            with spool.open("rb") as source:
                source.seek(max(0, int(data["offset"])))
                chunk = source.read(length)
                eof = source.tell() >= os.fstat(source.fileno()).st_size
        except FileNotFoundError:
            raise ActionFailed(StatusCode.MISSING_DATA, f"no dump {data['job']} on this node") from None
        return {"data": base64.b64encode(chunk).decode(), "eof": eof}

    @action("Remove a dump taken earlier", job=Input("string", required=True, pattern=_JOB))
    def discard(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        self._spool(data["job"]).unlink(missing_ok=True)
        return {}

    @action("Fetch a dump from a URL, check its digest, feed it to the restore command", slow=True,
            name=Input("string", required=True, pattern=_NAME),
            url=Input("string", required=True, max_length=4096, pattern=r"https?://\S+"),
            sha256=Input("string", required=True, pattern=_SHA256), size=Input("integer", required=True),
            key=Input("string", pattern=r"[A-Za-z0-9+/]{43}=", description="this dump's data key, if sealed"))
    def restore(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        dump = self._dump(data["name"])
        spool = self._spool(secrets.token_hex(16))
        try:
            with _private_file(spool) as out:
                digest, size = fetch_object(data["url"], out, int(data["size"]), dump.timeout, data.get("key"))
            if digest != data["sha256"] or size != data["size"]:
                raise ActionFailed(StatusCode.ABORTED, f"dump {data['name']}: refused, its digest does not match "
                                   f"(sha256 {digest[:16]}..., {size} bytes; expected {data['sha256'][:16]}..., "
                                   f"{data['size']} bytes)", {"refused": "digest", "sha256": digest, "size": size})
            with spool.open("rb") as source:
                status, tail = _run(dump.restore, dump.timeout, self._root(), stdin=source)
        finally:
            spool.unlink(missing_ok=True)
        if status != 0:
            why = f"timed out after {dump.timeout:.0f} s" if status == 124 else f"exited {status}"
            raise ActionFailed(StatusCode.ABORTED, f"dump {data['name']}: the restore command {why}",
                               {"exit_status": status, "output": tail})
        return {"sha256": digest, "size": size, "output": tail}

    def _dump(self, name: str) -> DumpCommandConfig:
        dumps = self.context.config.dumps
        if dumps is None or name not in dumps.commands:
            raise ActionFailed(StatusCode.INVALID_DATA, f"this node has no dump {name!r} (it is launched with "
                               "the spec's dumps: relaunch it after changing them)")
        return dumps.commands[name]

    def _root(self) -> str:
        return self.context.config.dumps.root if self.context.config.dumps else ""

    def _spool(self, job: str) -> Path:
        base = Path(self.context.config.state_dir or tempfile.gettempdir()) / "dumps"
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        return base / f"{job}.dump"


STALE_SPOOL_SECONDS = 86_400  # a dump no controller read to the end (it died): removed at the next take


def _remove_stale(directory: Path) -> None:
    now = time.time()
    for path in directory.glob("*.dump"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_SPOOL_SECONDS:
                path.unlink()


@contextlib.contextmanager
def _private_file(path: Path) -> Any:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        yield handle


def _run(command: str, timeout: float, root: str, *, stdout: Any = None, stdin: Any = None) -> tuple[int, str]:
    """Run COMMAND in its own process group (killed whole on timeout); (status, output tail)."""
    process = subprocess.Popen(["sh", "-c", command], stdin=stdin if stdin is not None else subprocess.DEVNULL,
                               stdout=stdout if stdout is not None else subprocess.PIPE,
                               stderr=subprocess.PIPE if stdout is not None else subprocess.STDOUT,
                               env=_command_environment(root), start_new_session=True)
    try:
        out, err = process.communicate(timeout=max(1, timeout))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return 124, _tail(err if stdout is not None else out)
    return process.returncode, _tail(err if stdout is not None else out)


def _command_environment(root: str) -> dict[str, str]:
    """The agent's environment, with DRB_ROOT where the node's files are (the local cloud's recipe
    root; unset on a real cloud), as the spec's checks and restore hooks see it."""
    env = dict(os.environ)
    if root:
        env["DRB_ROOT"] = root
    return env


def _tail(raw: bytes | None) -> str:
    return "\n".join((raw or b"").decode(errors="replace").splitlines()[-OUTPUT_TAIL_LINES:])


def _sha256_of(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as source:
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def fetch_object(url: str, out: Any, expected_size: int, timeout: float, key: str | None = None) -> tuple[str, int]:
    """Download URL into OUT (opening it with KEY when the dump is sealed), hashing what is written;
    stop reading past the expected size (+1 to notice a longer one; a sealed one's framing on top)."""
    import urllib.request  # here: the agent's resident size stays small until a restore needs it

    from drbootstrap.backups.sealing import Opener, SealBroken

    opener = Opener(base64.b64decode(key)) if key else None
    limit = expected_size + 1 + (64 + expected_size // 64 if opener else 0)
    digest, size, read = hashlib.sha256(), 0, 0
    try:
        with urllib.request.urlopen(url, timeout=min(60.0, timeout)) as response:
            while read < limit and (chunk := response.read(min(1024 * 1024, limit - read))):
                read += len(chunk)
                plain = opener.feed(chunk) if opener else chunk
                digest.update(plain)
                size += len(plain)
                out.write(plain)
        if opener:
            opener.finish()
    except SealBroken as error:
        raise ActionFailed(StatusCode.ABORTED, f"refused, its sealed content does not open: {error.message}",
                           {"refused": "digest"}) from None
    except OSError as error:
        # Never the URL itself: it grants read access until it expires.
        reason = getattr(error, "reason", None) or getattr(error, "code", None) or type(error).__name__
        raise ActionFailed(StatusCode.ABORTED, f"cannot fetch the dump: {reason}", {"refused": "fetch"}) from None
    return digest.hexdigest(), size
