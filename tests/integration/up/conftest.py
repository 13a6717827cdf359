"""Helpers for the `up` end-to-end tests: a private state dir, a free subnet, the CLI as a process."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.prereq import REPO_ROOT, require, require_binary, require_root

# DRB_E2E_HOME: another project tree (images/, recipes/) to run these against, e.g. patched images.
PROJECT = Path(os.environ.get("DRB_E2E_HOME") or REPO_ROOT)
E2E_GATE = pytest.mark.skipif(
    os.environ.get("DRB_E2E") == "0", reason="DRB_E2E=0: the minutes-long `up` end-to-end runs are switched off"
)


@dataclass
class Environment:
    home: Path  # DRB_STATE_DIR
    spec_file: Path
    name: str
    network: str
    project: Path = PROJECT

    def env(self) -> dict[str, str]:
        return {**os.environ, "DRB_STATE_DIR": str(self.home / "state"), "DRB_HOME": str(self.project)}

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        # No standard input, as under cron or CI, whatever terminal the tests were started from.
        return subprocess.run([sys.executable, "-m", "drbootstrap", *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "drbootstrap", *args], env=self.env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def driver(self):
        from drbootstrap.providers import get_node_driver

        return get_node_driver("local", state_dir=self.home / "state", network=self.network,
                               images_dir=self.project / "images")

    def live_hostnames(self) -> list[str]:
        from drbootstrap.providers.nodes import ENVIRONMENT_TAG, HOSTNAME_TAG, node_tags

        return sorted(node_tags(n).get(HOSTNAME_TAG, "?") for n in self.driver().list_nodes()
                      if node_tags(n).get(ENVIRONMENT_TAG) == self.name)

    @property
    def paths(self):  # EnvironmentPaths: the environment's files in the state dir
        from drbootstrap.paths import EnvironmentPaths

        return EnvironmentPaths(self.home / "state", self.name)

    def report(self) -> dict:
        return json.loads(self.paths.report_json.read_text())

    def in_node(self, hostname: str, command: str) -> str:
        node = next(n for n in self.driver().list_nodes() if n.name == hostname)
        argv = self.driver().ex_enter_command(node, ["sh", "-c", command])
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def make_environment(spec_text: str, name: str, project: Path = PROJECT) -> Environment:
    require_root()
    require_binary("ip", "unshare", "nsenter", "dnsmasq", "java", "puppet")
    require(Path("/usr/share/puppetserver/puppetserver.jar").exists(), "puppetserver (Debian `puppetserver`)")
    require(Path("/usr/share/activemq").is_dir(), "ActiveMQ (Debian `activemq`)")
    home = Path(tempfile.mkdtemp(prefix="drb-up-", dir="/var/tmp"))
    network = f"10.{random.randint(214, 249)}.{random.randint(0, 255)}.0/24"
    text = spec_text.replace("10.213.0.0/24", network).replace("environment: demo", f"environment: {name}")
    spec_file = home / "env.yaml"
    spec_file.write_text(text)
    return Environment(home, spec_file, name, network, project)


def tear_down(environment: Environment) -> None:
    """Destroy what the run made, then everything of this local cloud (bridge, anchor), then the files."""
    try:
        environment.cli("down", str(environment.spec_file), "--yes", timeout=300)
    finally:
        try:
            environment.driver().ex_cleanup()
        finally:
            shutil.rmtree(environment.home, ignore_errors=True)
