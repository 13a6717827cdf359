"""The reboot agent: reply first, then run the configured reboot command after a delay."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from typing import Any

from drbootstrap.agent.registry import ActionResult, AgentContext, Input, RpcAgent, action
from drbootstrap.messaging.envelope import Request

log = logging.getLogger("drbootstrap.agent")


class RebootAgent(RpcAgent):
    name = "reboot"
    description = "Reboot the node (configurable command; default `shutdown -r now`)."

    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        self._timer: threading.Timer | None = None

    @action("Reboot after `delay` seconds (the reply goes out first)", delay=Input("number"))
    def reboot(self, request: Request, data: dict[str, Any]) -> ActionResult:
        config = self.context.config.reboot
        delay = float(data.get("delay", config.delay))
        delay = min(max(delay, 0.0), 3600.0)

        def schedule() -> None:
            self._timer = threading.Timer(delay, self._run_command)
            self._timer.daemon = True
            self._timer.start()

        log.warning(
            "%s: reboot requested by %s; running in %.1fs", self.context.config.identity, request.caller_id, delay
        )
        return ActionResult({"rebooting_in": delay, "command": config.command}, after_reply=schedule)

    def _run_command(self) -> None:
        config = self.context.config
        env = {**os.environ, "DRB_AGENT_PID": str(os.getpid()), "DRB_AGENT_IDENTITY": config.identity}
        # Detached: the command usually ends this process (or the whole node).
        subprocess.Popen(
            ["/bin/sh", "-c", config.reboot.command], env=env, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
