"""The spec's checks after a node is configured: TCP and HTTP from here, commands inside the node.

Each check is retried until its timeout: a service Puppet just started may need a moment.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from drbootstrap.executor.context import NodeRuntime, RunContext
from drbootstrap.spec.models import CheckSpec


def run_checks(ctx: RunContext, node: NodeRuntime) -> str:
    from drbootstrap.executor.outcomes import StepFailed

    group = node.planned.group
    specs = group.checks if group is not None else []
    for index, check in enumerate(specs, 1):
        deadline = ctx.clock.monotonic() + check.timeout_seconds
        while True:
            ok, why = run_check(ctx, node, check)
            if ok:
                break
            if ctx.clock.monotonic() >= deadline:
                raise StepFailed(
                    f"{node.hostname}: check {index} ({describe(check)}) failed: "
                    f"{why.splitlines()[0] if why else 'no detail'}",
                    hint="fix the service or the check in the spec, then `up --redo checks`",
                    log_tail=why,
                )
            ctx.clock.sleep(1.0)
    return f"{len(specs)} passed" if specs else "no checks"


def describe(check: CheckSpec) -> str:
    if check.tcp is not None:
        return f"tcp {check.tcp.host or '<node>'}:{check.tcp.port}"
    if check.http is not None:
        return f"http {check.http.url}"
    return f"command {check.command}"


def run_check(ctx: RunContext, node: NodeRuntime, check: CheckSpec) -> tuple[bool, str]:
    """(passed, why not). The node's name stands for its address: this host does not use the master's DNS."""
    address = node.address or node.fqdn
    if check.tcp is not None:
        return tcp_open(check.tcp.host or address, check.tcp.port, timeout=3.0)
    if check.http is not None:
        url = str(check.http.url).replace("{hostname}", address)
        return http_status(url, check.http.expect_status, timeout=5.0)
    status, output = ctx.access.run(node.provider_node.id, str(check.command), check.timeout_seconds)
    return status == 0, f"exit {status}\n{output}".strip()


def tcp_open(host: str, port: int, *, timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as error:
        return False, f"{host}:{port}: {error.strerror or error}"


def http_status(url: str, expected: int, *, timeout: float) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        return False, f"{url}: {getattr(error, 'reason', error)}"
    return status == expected, f"{url}: HTTP {status}, expected {expected}"
