"""A real BIND 9 (`named`) for tests: one test zone, a TSIG key allowed to update it, loopback only.

Usage (a module-scoped fixture is the cheap way; named starts in well under a second):

    from tests.support.bind import BindServer
    @pytest.fixture(scope="module")
    def bind(tmp_path_factory):
        with BindServer(tmp_path_factory.mktemp("bind"), zone="drb-test.internal") as server:
            yield server
    # server.host, server.port, server.zone, server.key (TsigKey allowed to update), server.pid,
    # server.locked_zone (served, updates REFUSED)

Everything (config, zone, journal, pid file, session key) lives in the given directory; named
runs in the foreground as our child in its own process group and is stopped by pid on exit.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from drbootstrap.dns.rfc2136 import TsigKey
from tests.support.server_process import free_port, stop_process, wait_until

NAMED = "/usr/sbin/named"


def random_tsig_key(name: str) -> TsigKey:
    return TsigKey(name=name, secret=base64.b64encode(secrets.token_bytes(32)).decode(), algorithm="hmac-sha256")


class BindServer:
    """named serving ZONE (SOA + NS only) on 127.0.0.1:PORT; updates allowed with `self.key`."""

    def __init__(self, directory: Path, zone: str = "drb-test.internal", host: str = "127.0.0.1") -> None:
        self.directory = Path(directory)
        self.zone = zone.rstrip(".")
        self.host = host
        self.port = 0
        self.key = random_tsig_key("drb-update-key")
        self.locked_zone = f"locked-{self.zone}"  # served, but no key may update it: REFUSED
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> BindServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        conf = self._write_config()
        log = self.directory / "named.log"
        with open(log, "wb") as out:
            # -g: foreground, log to stderr; no -u: stays root, owns its own temp directory.
            self.process = subprocess.Popen(
                [NAMED, "-g", "-4", "-c", str(conf), "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_until(self._answers_soa, self.process, "named", log)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def _answers_soa(self) -> bool:
        query = dns.message.make_query(f"{self.zone}.", "SOA")
        response = dns.query.udp(query, self.host, port=self.port, timeout=0.5)
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)

    def _write_config(self) -> Path:
        d = self.directory
        zone_files = {}
        for zone in (self.zone, self.locked_zone):
            zone_files[zone] = d / f"{zone}.zone"
            zone_files[zone].write_text(
                f"$TTL 60\n"
                f"@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n"
                f"@ IN NS ns.{zone}.\n"
                f"ns IN A {self.host}\n"
            )
        conf = d / "named.conf"
        conf.write_text(
            f'key "{self.key.name}" {{ algorithm {self.key.algorithm}; secret "{self.key.secret}"; }};\n'
            "controls { };\n"  # no rndc channel: port 953 may be taken by another test's named
            "options {\n"
            f'  directory "{d}";\n'
            f'  pid-file "{d}/named.pid";\n'
            f'  session-keyfile "{d}/session.key";\n'
            f'  managed-keys-directory "{d}";\n'
            f"  listen-on port {self.port} {{ {self.host}; }};\n"
            "  listen-on-v6 { none; };\n"
            "  recursion no;\n"
            "  allow-query { any; };\n"
            "  dnssec-validation no;\n"
            "};\n"
            f'zone "{self.zone}" {{\n'
            "  type primary;\n"
            f'  file "{zone_files[self.zone]}";\n'
            f'  allow-update {{ key "{self.key.name}"; }};\n'
            "};\n"
            f'zone "{self.locked_zone}" {{ type primary; file "{zone_files[self.locked_zone]}"; '
            "allow-update { none; }; };\n"
        )
        os.chmod(conf, 0o600)
        return conf
