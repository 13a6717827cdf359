"""Benchmark: the master's time to ready per service, the workers' boot-to-named times, and db01's
first Puppet run as the node itself reports it, on the local cloud, from the one scenario of
tests/integration/images (master + two workers).

    python -m pytest tests/bench/bench_images.py -s        (root)

Besides wall clock (noisy on a shared machine) it prints what does not depend on the load as much:
the CPU seconds puppetserver used to start, the phases of its log, and db01's last_run_summary.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path

import yaml

from tests.integration.images.test_images_boot import scenario  # noqa: F401 - the shared fixture

# puppetserver.log lines that mark its start-up phases (the first line of the log starts the list).
PHASES = (
    ("JRuby instance created", "Finished creating JRubyInstance"),
    ("CA ready (its key and certificate made on a first boot)", "CA Service adding a ring handler"),
    ("server ready", "Puppet Server has successfully started"),
)
SUMMARY_TIMES = ("startup_time", "fact_generation", "node_retrieval", "plugin_sync", "config_retrieval",
                 "catalog_application", "total")


def _log_time(line: str) -> float:
    return datetime.fromisoformat(line[:23] + "+00:00").timestamp()


def _puppetserver_phases(node_dir: Path) -> list[tuple[str, float]]:
    """Seconds from the JVM's launch (puppetserver.pid written) to each phase's log line."""
    launched = (node_dir / "puppetserver.pid").stat().st_mtime
    lines = [line for line in (node_dir / "puppet/log/puppetserver.log").read_text().splitlines()
             if re.match(r"\d{4}-\d\d-\d\dT", line)]
    phases = [("first log line (JVM and Clojure loaded)", _log_time(lines[0]) - launched)]
    for label, marker in PHASES:
        found = next((line for line in lines if marker in line), None)
        if found:
            phases.append((label, _log_time(found) - launched))
    return phases


def _cpu_seconds(pid: str, children: bool = False) -> float:
    """A process's own CPU time, or (children) that of the children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11  # cutime, cstime / utime, stime
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def test_bench_master_services_and_worker_naming(scenario):
    node_dir = Path(scenario.dirs("controller")["node_dir"])
    pid = (node_dir / "puppetserver.pid").read_text().strip()
    cpu_at_ready = _cpu_seconds(pid)  # the server has only answered the CA probe and SSH meanwhile
    load_before = os.getloadavg()[0]
    agent = Path(scenario.dirs("db01")["node_dir"], "agent.pid").read_text().strip()
    agent_children_cpu = _cpu_seconds(agent, children=True)
    started = time.monotonic()
    with scenario.client() as client:
        replies = client.call("puppet", "runonce", {"force": True}, targets=["db01.img.internal"], timeout=600).replies
    scenario.times["db01 first Puppet run (CSR, autosign, first catalog), RPC wall"] = time.monotonic() - started
    puppet_cpu = _cpu_seconds(agent, children=True) - agent_children_cpu  # the `puppet agent` it ran
    summary_file = Path(scenario.dirs("db01")["node_dir"], "puppet/var/state/last_run_summary.yaml")
    summary = yaml.safe_load(summary_file.read_text()).get("time", {})
    report = summary_file.with_name("last_run_report.yaml").read_text()
    rss = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
    print(f"\nload average {load_before:.1f} before db01's run, {os.getloadavg()[0]:.1f} after")
    print(f"puppetserver: {cpu_at_ready:.1f} s of CPU to start (JVM launch to CA ready, first boot);"
          f" {rss.split(':')[1].strip()} resident after the first catalog")
    print("| puppetserver phase | seconds after the JVM's launch |\n| --- | --- |")
    for label, seconds in _puppetserver_phases(node_dir):
        print(f"| {label} | {seconds:.1f} |")
    print("| db01's first run, from its last_run_summary | seconds |\n| --- | --- |")
    for name in SUMMARY_TIMES:
        if name in summary:
            print(f"| {name} | {summary[name]:.2f} |")
    print(f"CPU used by db01's `puppet agent` process: {puppet_cpu:.1f} s")
    print(f"Facter errors in the run's report: {report.count('source: Facter')}; run status {replies[0].status_code}")
    print("| what | seconds after launch |\n| --- | --- |")
    for what, seconds in scenario.times.items():
        print(f"| {what} | {seconds:.1f} |")
