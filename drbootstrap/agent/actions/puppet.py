"""The puppet agent: runonce, enable, disable (Puppet's own lockfile), status, last_run_summary.

Mode `apply` runs `puppet apply MANIFEST`; mode `server` runs `puppet agent --onetime
--no-daemonize --server X --certname Y`. Both get the node's own confdir/vardir/ssldir/rundir/logdir.

A runonce that finds a run already in flight on the node (asked by an earlier caller that went
away, e.g. an `up` that was killed) waits for it and adopts its result from last_run_summary.yaml
instead of failing on Puppet's lock; Puppet's own waitforlock covers the moment between the
check and the start of the run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from drbootstrap.agent.registry import ActionFailed, Input, RpcAgent, action
from drbootstrap.messaging.envelope import Request, StatusCode

_TAG = r"[A-Za-z0-9_:\-,]{1,512}"
_ENVIRONMENT = r"[a-z0-9_]{1,64}"
_WAIT_POLL = 0.5  # seconds between looks at a run in flight

# One Puppet run at a time per vardir within this process: a second runonce waits for the first.
_RUNS: dict[str, threading.Lock] = {}
_RUNS_GUARD = threading.Lock()


def _run_lock(vardir: str) -> threading.Lock:
    with _RUNS_GUARD:
        return _RUNS.setdefault(vardir, threading.Lock())


class PuppetAgent(RpcAgent):
    name = "puppet"
    description = "Run Puppet once, enable/disable it, report its status and last run."

    # -- actions ------------------------------------------------------------------------------

    @action(
        "Run Puppet once and report the result",
        slow=True,
        force=Input("boolean", description="run now, skipping splay"),
        noop=Input("boolean"),
        tags=Input("string", pattern=_TAG),
        environment=Input("string", pattern=_ENVIRONMENT),
        splay=Input("boolean"),
        splaylimit=Input("integer"),
    )
    def runonce(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        disabled = self._disabled_message()
        if disabled is not None:
            raise ActionFailed(StatusCode.ABORTED, f"Puppet is disabled: {disabled or 'no reason given'}")
        adopted = self._adopt_run_in_flight()
        if adopted is not None:
            return adopted
        if data.get("splay") and not data.get("force"):
            limit = int(data.get("splaylimit") or self._config().splaylimit)
            time.sleep(random.uniform(0, max(0, min(limit, 3600))))
        with _run_lock(self._config().vardir):
            return self._run(data)

    def _adopt_run_in_flight(self) -> dict[str, Any] | None:
        """When a run is in flight here (ours or another process's), wait for it and return its result
        from the summary it wrote; None when no run was in flight (or it ended without a summary)."""
        lock = _run_lock(self._config().vardir)
        if lock.acquire(blocking=False):
            lock.release()
            if self._applying_pid() is None:
                return None
        waited_from = time.time()
        deadline = time.monotonic() + self._config().timeout
        while lock.locked() or self._applying_pid() is not None:
            if time.monotonic() > deadline:
                raise ActionFailed(StatusCode.UNKNOWN_ERROR,
                                   f"a Puppet run in flight did not finish within {self._config().timeout:.0f}s")
            time.sleep(_WAIT_POLL)
        try:
            written = self._summary_file().stat().st_mtime
        except OSError:
            return None
        if written < waited_from - 1.0:
            return None  # it ended without a summary of its own: run afresh
        data_out = result_from_summary(self._read_summary(), round(time.time() - waited_from, 2))
        if data_out["failed"]:
            raise ActionFailed(StatusCode.UNKNOWN_ERROR, "the Puppet run in flight failed (adopted its result)",
                               data_out)
        return data_out

    def _run(self, data: dict[str, Any]) -> dict[str, Any]:
        command = self.command(noop=bool(data.get("noop")), tags=data.get("tags"), environment=data.get("environment"))
        started = time.time()
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=self._config().timeout, env=_puppet_env()
            )
        except FileNotFoundError as error:
            raise ActionFailed(StatusCode.ABORTED, f"puppet binary not found: {command[0]}") from error
        except subprocess.TimeoutExpired as error:
            raise ActionFailed(StatusCode.UNKNOWN_ERROR, f"puppet did not finish within {self._config().timeout:.0f}s") from error
        summary = self._read_summary()
        data_out = {
            "exitcode": result.returncode,
            "changed": result.returncode in (2, 6),
            "failed": result.returncode in (1, 4, 6),
            "duration": round(time.time() - started, 2),
            "summary": summary,
            "output": _tail(result.stdout + result.stderr),
        }
        if data_out["failed"]:
            raise ActionFailed(StatusCode.UNKNOWN_ERROR, f"Puppet run failed (exit {result.returncode})", data_out)
        return data_out

    @action("Allow Puppet runs again (removes the disable lockfile)")
    def enable(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        lock = self._disabled_lockfile()
        was_disabled = lock.exists()
        lock.unlink(missing_ok=True)
        return {"enabled": True, "was_disabled": was_disabled}

    @action("Stop Puppet runs, with a reason", message=Input("string", max_length=512))
    def disable(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        message = data.get("message") or f"disabled by {request.caller_id} via drbootstrap"
        lock = self._disabled_lockfile()
        lock.parent.mkdir(parents=True, exist_ok=True)
        tmp = lock.with_name(f".{lock.name}.tmp")
        tmp.write_text(json.dumps({"disabled_message": message}))
        os.replace(tmp, lock)  # Puppet's own lockfile: `puppet agent` honours it too
        return {"enabled": False, "disabled_message": message}

    @action("Enabled or not, running or not, and when it last ran")
    def status(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        disabled = self._disabled_message()
        applying = self._applying_pid() is not None
        summary = self._read_summary()
        last_run = int((summary.get("time") or {}).get("last_run", 0)) if summary else 0
        state = "applying" if applying else ("disabled" if disabled is not None else "idling")
        return {
            "enabled": disabled is None,
            "disabled_message": disabled or "",
            "applying": applying,
            "status": state,
            "lastrun": last_run,
            "since_lastrun": int(time.time() - last_run) if last_run else None,
            "message": f"Currently {state}; last completed run {int(time.time() - last_run)}s ago"
            if last_run
            else f"Currently {state}; never run",
        }

    @action("Puppet's last_run_summary.yaml")
    def last_run_summary(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        summary = self._read_summary()
        if not summary:
            raise ActionFailed(StatusCode.ABORTED, "Puppet has not completed a run on this node yet")
        return {"summary": summary}

    # -- the command --------------------------------------------------------------------------

    def command(self, *, noop: bool = False, tags: str | None = None, environment: str | None = None) -> list[str]:
        """The exact Puppet command line for this node's config (mode apply or server)."""
        config = self._config()
        dirs = self._dirs()
        common = [
            f"--confdir={dirs['confdir']}",
            f"--vardir={dirs['vardir']}",
            f"--ssldir={dirs['ssldir']}",
            f"--rundir={dirs['rundir']}",
            f"--logdir={dirs['logdir']}",
            f"--lastrunfile={self._summary_file()}",
            "--detailed-exitcodes",
            "--color=false",
        ]
        if noop:
            common.append("--noop")
        if tags:
            common.append(f"--tags={tags}")
        environment = environment or config.environment
        if config.mode == "apply":
            if not config.manifest:
                raise ActionFailed(StatusCode.ABORTED, "puppet mode apply needs `manifest` in the agent config")
            command = [config.binary, "apply", *common]
            if config.modulepath:
                command.append(f"--modulepath={config.modulepath}")
            if environment:
                command.append(f"--environment={environment}")
            return [*command, config.manifest]
        if config.mode != "server":
            raise ActionFailed(StatusCode.ABORTED, f"unknown puppet mode {config.mode!r} (use apply or server)")
        if not config.server:
            raise ActionFailed(StatusCode.ABORTED, "puppet mode server needs `server` in the agent config")
        # waitforlock: a run that starts between our look and Puppet's own waits for the other to end.
        command = [config.binary, "agent", "--onetime", "--no-daemonize", "--no-splay", "--verbose", *common,
                   f"--server={config.server}", f"--certname={config.certname or self.context.config.identity}",
                   "--waitforlock=1", f"--maxwaitforlock={int(config.timeout)}"]
        if config.server_port:
            command.append(f"--serverport={config.server_port}")
        if config.waitforcert is not None:
            command.append(f"--waitforcert={config.waitforcert}")
        if environment:
            command.append(f"--environment={environment}")
        return command

    # -- Puppet's files -----------------------------------------------------------------------

    def _config(self):  # noqa: ANN202 - PuppetConfig
        return self.context.config.puppet

    def _dirs(self) -> dict[str, str]:
        config = self._config()
        return {
            "confdir": config.confdir,
            "vardir": config.vardir,
            "ssldir": config.ssldir or f"{config.confdir}/ssl",
            "rundir": config.rundir or f"{config.vardir}/run",
            "logdir": config.logdir or f"{config.vardir}/log",
        }

    def _disabled_lockfile(self) -> Path:
        return Path(self._config().vardir) / "state" / "agent_disabled.lock"

    def _summary_file(self) -> Path:
        return Path(self._config().vardir) / "state" / "last_run_summary.yaml"

    def _disabled_message(self) -> str | None:
        """None when enabled; the lock message ("" if none) when disabled."""
        try:
            raw = self._disabled_lockfile().read_text()
        except FileNotFoundError:
            return None
        try:
            return str(json.loads(raw).get("disabled_message", ""))
        except (ValueError, AttributeError):
            return ""

    def _applying_pid(self) -> int | None:
        lock = Path(self._config().vardir) / "state" / "agent_catalog_run.lock"
        try:
            pid = int(lock.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        try:  # a zombie holds nothing: it has ended, its parent just has not reaped it yet
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        except (OSError, IndexError):
            pass
        return pid

    def _read_summary(self) -> dict[str, Any]:
        import yaml

        try:
            data = yaml.safe_load(self._summary_file().read_text())
        except (OSError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}


def result_from_summary(summary: dict[str, Any], duration: float) -> dict[str, Any]:
    """runonce's reply for a run this call did not start, from its last_run_summary.yaml, with the
    exit code Puppet's --detailed-exitcodes would have given (2 changed, 4 failures, 6 both)."""
    resources = summary.get("resources") or {}
    events = summary.get("events") or {}
    failed = any(int(value or 0) > 0 for value in (resources.get("failed"), resources.get("failed_to_restart"),
                                                     events.get("failure")))
    changed = int(resources.get("changed") or 0) > 0
    exitcode = (4 if failed else 0) | (2 if changed else 0)
    return {"exitcode": exitcode, "changed": changed, "failed": failed, "duration": duration, "summary": summary,
            "output": "", "adopted": True}


def _puppet_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HOME", "/root")
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
