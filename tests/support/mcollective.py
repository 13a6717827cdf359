"""Debian's MCollective 2.12 as a test peer: server.cfg/client.cfg, a foreground mcollectived, `mco`.

Debian's package works with ruby-stomp 1.4.10 against ActiveMQ 5.17 given a libdir that includes
vendor_ruby (where the discovery and rpcutil agents live) and `daemonize = 0`. One tweak: its yaml
facts source is broken on Ruby 3.1 (see FACTS_PLUGIN), so the configs use a fixed copy.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from drbootstrap.paths import write_private_file

LIBDIR = "/usr/share/mcollective/plugins:/usr/lib/ruby/vendor_ruby"

# Debian's facts/yaml_facts.rb calls YAML.safe_load(text, [Symbol], [], true): Psych 3's positional
# arguments, which Psych 4 (Ruby 3.1, bookworm) rejects with "wrong number of arguments (given 4,
# expected 1)", so every fact is empty and no fact filter ever matches. Same plugin, keywords.
FACTS_PLUGIN = """\
module MCollective
  module Facts
    require 'yaml'

    class Drbyaml_facts<Base
      def load_facts_from_source
        facts = {}
        Config.instance.pluginconf["yaml"].split(File::PATH_SEPARATOR).each do |file|
          begin
            facts.merge!(YAML.safe_load(File.read(file), permitted_classes: [Symbol], aliases: true) || {})
          rescue Exception => e
            Log.error("Failed to load yaml facts from #{file}: #{e.class}: #{e}")
          end
        end
        facts
      end
    end
  end
end
"""
READY_TIMEOUT = 30.0


def new_psk() -> str:
    return secrets.token_hex(16)


def write_mcollective_config(
    path: Path,
    *,
    identity: str,
    broker_host: str,
    broker_port: int,
    psk: str,
    facts: dict[str, str] | None = None,
    classes: list[str] | None = None,
    collective: str = "mcollective",
    loglevel: str = "debug",  # start_mcollectived waits for a debug line
    connector: str = "activemq",  # or "rabbitmq": MCollective's own RabbitMQ connector
    more_brokers: Sequence[tuple[str, int]] = (),  # a cluster's other nodes: the connector's pool, in order
) -> Path:
    """A server.cfg or client.cfg (the same keys serve both); 0600 because it holds the psk."""
    work = path.parent
    facts_file = work / f"{path.stem}.facts.yaml"
    classes_file = work / f"{path.stem}.classes.txt"
    facts_file.write_text(yaml.safe_dump(facts or {"role": "legacy"}))
    plugins = work / "mco-plugins"
    (plugins / "mcollective" / "facts").mkdir(parents=True, exist_ok=True)
    (plugins / "mcollective" / "facts" / "drbyaml_facts.rb").write_text(FACTS_PLUGIN)
    classes_file.write_text("".join(f"{name}\n" for name in classes or []))
    settings = {
        "main_collective": collective,
        "collectives": collective,
        "libdir": f"{plugins}:{LIBDIR}",
        "logfile": str(work / f"{path.stem}.log"),
        "loglevel": loglevel,
        "daemonize": "0",
        "identity": identity,
        "securityprovider": "psk",
        "plugin.psk": psk,
        "connector": connector,
        f"plugin.{connector}.pool.size": str(1 + len(more_brokers)),
        **{f"plugin.{connector}.pool.{index}.{key}": value
           for index, (host, port) in enumerate([(broker_host, broker_port), *more_brokers], start=1)
           for key, value in (("host", host), ("port", str(port)))},
        "factsource": "drbyaml",
        "plugin.yaml": str(facts_file),
        "classesfile": str(classes_file),
        "direct_addressing": "1",
        "color": "0",  # plain text for the tests that read mco output
    }
    write_private_file(path, "".join(f"{key} = {value}\n" for key, value in settings.items()))
    return path


@dataclass
class Mcollectived:
    """A foreground mcollectived in its own process group; stop() kills exactly that group."""

    process: subprocess.Popen
    config: Path
    log: Path
    identity: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_mcollectived(config: Path, identity: str, *, collective: str = "mcollective",
                       connector: str = "activemq") -> Mcollectived:
    """Start mcollectived on `config` and wait until it subscribed to its last agent topic."""
    log = config.parent / f"{config.stem}.log"
    pid_file = config.parent / f"{config.stem}.pid"
    output = open(config.parent / f"{config.stem}.out", "wb")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(
        ["mcollectived", "--config", str(config), "--pidfile", str(pid_file)],
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output.close()
    daemon = Mcollectived(process, config, log, identity)
    ready_line = (f"Subscribing to /exchange/{collective}_broadcast/rpcutil" if connector == "rabbitmq"
                  else f"Subscribing to /topic/{collective}.rpcutil.agent")
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"mcollectived exited with {process.returncode}; see {log}")
            if log.exists() and ready_line in log.read_text(errors="replace"):
                time.sleep(0.2)  # the SUBSCRIBE frame is written just after the log line
                return daemon
            time.sleep(0.1)
        raise RuntimeError(f"mcollectived did not subscribe within {READY_TIMEOUT:.0f}s; see {log}")
    except BaseException:
        daemon.stop()
        raise


def run_mco(client_config: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run `mco ARGS --config client_config` and capture its output."""
    return subprocess.run(
        ["mco", *args, "--config", str(client_config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={key: value for key, value in os.environ.items() if key != "MCOLLECTIVE_PSK"},  # it beats the config
        check=False,
    )
