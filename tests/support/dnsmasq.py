"""A real dnsmasq for tests, configured by drbootstrap's own renderer, on a loopback address.

    from tests.support.dnsmasq import DnsmasqServer
    with DnsmasqServer(tmp_path, domain="drb-test.internal") as server:
        server.hosts_file.write_text("10.213.0.5 web01.drb-test.internal web01\\n")
        server.reload()              # SIGHUP: dnsmasq re-reads the hosts file
        # query server.host:server.port with dnspython

It listens on a random 127.0.0.X and a free port, runs in the foreground (-k) as our child in
its own process group, keeps its pid file and log in the given directory, and is stopped by pid.
Inside a network namespace you made: DnsmasqServer(dir, host="10.231.7.2", port=53, netns="ns1")
(the address must already be on a link in that namespace; readiness is probed with dig there).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path

import dns.message
import dns.query

from drbootstrap.dns.dnsmasq_config import DnsmasqSettings, write_dnsmasq_config
from tests.support.server_process import free_port, stop_process, wait_until

DNSMASQ = "/usr/sbin/dnsmasq"


class DnsmasqServer:
    def __init__(
        self, directory: Path, domain: str = "drb-test.internal", host: str | None = None,
        port: int | None = None, netns: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.domain = domain
        # A random loopback address as well as a free port: other tests run dnsmasq too.
        self.host = host or f"127.0.{random.randint(1, 254)}.{random.randint(2, 254)}"
        self.port = port or 0
        self.netns = netns
        self.hosts_file = self.directory / "hosts"
        self.config_file = self.directory / "dnsmasq.conf"
        self.process: subprocess.Popen | None = None

    def settings(self) -> DnsmasqSettings:
        return DnsmasqSettings(
            domain=self.domain,
            listen_address=self.host,
            port=self.port,
            hosts_file=self.hosts_file,
            pid_file=self.directory / "dnsmasq.pid",
            user="root",  # the temp directory is 0700 root; dnsmasq's own user could not re-read it
            log_file=self.directory / "dnsmasq.log",
        )

    def __enter__(self) -> DnsmasqServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)
        write_dnsmasq_config(self.settings(), self.config_file)
        log = self.directory / "dnsmasq.stderr"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                self._in_netns([DNSMASQ, "-k", "-C", str(self.config_file)]),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_until(self._answers, self.process, "dnsmasq", log)

    def reload(self) -> None:
        """SIGHUP, as the dns agent does after editing the hosts file."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGHUP)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def _in_netns(self, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *command] if self.netns else command

    def _answers(self) -> bool:
        if self.netns:
            probe = self._in_netns(
                ["dig", "+time=1", "+tries=1", "-p", str(self.port), f"@{self.host}", f"ready-probe.{self.domain}"]
            )
            return "status:" in subprocess.run(probe, capture_output=True, text=True, timeout=5).stdout
        query = dns.message.make_query(f"ready-probe.{self.domain}.", "A")
        dns.query.udp(query, self.host, port=self.port, timeout=0.5)
        return True
