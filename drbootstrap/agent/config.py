"""The node agent's configuration: a YAML file read into dataclasses (no pydantic: keep RSS small)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from drbootstrap.errors import SpecError


@dataclass
class RebootConfig:
    command: str = "shutdown -r now"  # run through `sh -c` after the reply went out
    delay: float = 5.0


@dataclass
class PuppetConfig:
    binary: str = "puppet"
    mode: str = "server"  # "server": puppet agent --onetime; "apply": puppet apply MANIFEST
    server: str | None = None
    server_port: int | None = None  # server mode: --serverport (Puppet's default 8140)
    waitforcert: int | None = None  # server mode: --waitforcert (None keeps Puppet's default)
    certname: str | None = None
    environment: str | None = None
    manifest: str | None = None  # apply mode
    modulepath: str | None = None  # apply mode
    confdir: str = "/etc/puppet"
    vardir: str = "/var/lib/puppet"
    ssldir: str | None = None  # default <confdir>/ssl
    rundir: str | None = None  # default <vardir>/run
    logdir: str | None = None  # default <vardir>/log
    splaylimit: int = 30
    timeout: float = 1800.0


@dataclass
class DnsConfig:
    hosts_file: str = "/etc/drbootstrap/dnsmasq.hosts"
    dnsmasq_pid_file: str | None = "/run/dnsmasq/dnsmasq.pid"
    domain: str | None = None  # appended to bare names as a second (fqdn) alias


@dataclass
class BackupVolumeConfig:
    """One volume this node backs up: where it is mounted here and the spec's hooks for it."""

    path: str
    pre_snapshot: str | None = None
    post_snapshot: str | None = None
    hook_timeout: float = 300.0


@dataclass
class BackupConfig:
    """What the backup agent may touch, written at launch from the spec: requests name a volume,
    never a path or a command. Manifests are bounded in files, bytes and time."""

    volumes: dict[str, BackupVolumeConfig] = field(default_factory=dict)
    max_files: int = 200_000
    max_bytes: int = 256 * 1024**3
    max_seconds: float = 900.0

    def __post_init__(self) -> None:
        self.volumes = {str(name): v if isinstance(v, BackupVolumeConfig) else BackupVolumeConfig(**v)
                        for name, v in (self.volumes or {}).items()}


@dataclass
class DumpCommandConfig:
    """One application dump of this node: `command` writes it to stdout, `restore` reads it on stdin."""

    command: str
    restore: str
    timeout: float = 600.0


@dataclass
class DumpsConfig:
    """What the dumps agent may run, written at launch from the spec's `dumps:`: requests name a
    dump, never a command. `root`: DRB_ROOT for the commands (the local cloud's recipe root)."""

    commands: dict[str, DumpCommandConfig] = field(default_factory=dict)
    root: str = ""

    def __post_init__(self) -> None:
        self.commands = {str(name): c if isinstance(c, DumpCommandConfig) else DumpCommandConfig(**c)
                         for name, c in (self.commands or {}).items()}


@dataclass
class AgentConfig:
    identity: str = ""
    brokers: list[str] = field(default_factory=list)
    collective: str = "mcollective"
    key_file: str | None = None
    key_id: str | None = None
    trusted_keys_dir: str | None = None
    tls_ca: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    facts_file: str | None = None
    classes_file: str | None = None  # default: Puppet's own <puppet.vardir>/state/classes.txt
    role: str | None = None
    ip: str | None = None
    agents: list[str] | None = None  # None: every built-in and installed agent
    policy: list[dict[str, Any]] = field(default_factory=list)
    clock_skew: float = 30.0
    max_message_bytes: int = 256 * 1024  # also the largest STOMP frame read off the socket
    max_ttl: float = 900.0  # requests asking to live longer are refused
    state_dir: str | None = None  # holds the replay store (accepted request ids survive restarts)
    action_workers: int = 4  # threads running actions
    pending_actions: int = 32  # requests waiting for a worker before new ones are refused as busy
    protocol: str = "native"  # or "mcollective": MCollective 2.12 compat, key_file holds plugin.psk
    broker_kind: str = "activemq"  # or "rabbitmq": which STOMP destinations (messaging.naming)
    heartbeat_ms: int = 30_000
    pid_file: str | None = None
    log_file: str | None = None
    reboot: RebootConfig = field(default_factory=RebootConfig)
    puppet: PuppetConfig = field(default_factory=PuppetConfig)
    dns: DnsConfig | None = None
    backup: BackupConfig | None = None
    dumps: DumpsConfig | None = None
    rabbitmq_dir: str | None = None  # a broker node: its RabbitMQ node's files (broker_node.status reports it)

    def __post_init__(self) -> None:
        if not self.identity:
            self.identity = socket.getfqdn() or socket.gethostname()


REPLAY_STORE = "replay-ids"  # file in state_dir

_NESTED = {"reboot": RebootConfig, "puppet": PuppetConfig, "dns": DnsConfig, "backup": BackupConfig,
           "dumps": DumpsConfig}


def agent_config_from_dict(raw: dict[str, Any], where: str = "agent config") -> AgentConfig:
    """Build an AgentConfig, reporting every unknown key at once with the keys that exist."""
    problems: list[str] = []
    values = _known(raw, AgentConfig, where, problems)
    for key, kind in _NESTED.items():
        if isinstance(values.get(key), dict):
            values[key] = kind(**_known(values[key], kind, f"{where}: {key}", problems))
        elif key in values and values[key] is not None:
            problems.append(f"{where}: `{key}` must be a mapping")
    if isinstance(values.get("brokers"), str):
        values["brokers"] = [values["brokers"]]
    if problems:
        raise SpecError(problems)
    return AgentConfig(**values)


def load_agent_config(path: Path) -> AgentConfig:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise SpecError([f"{path}: cannot read the agent config: {error.strerror}"]) from error
    except yaml.YAMLError as error:
        raise SpecError([f"{path}: not valid YAML: {error}"]) from error
    if not isinstance(raw, dict):
        raise SpecError([f"{path}: the agent config must be a mapping of settings"])
    return agent_config_from_dict(raw, str(path))


def _known(raw: dict[str, Any], kind: type, where: str, problems: list[str]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    for key in raw:
        if key not in names:
            problems.append(f"{where}: unknown setting `{key}` (known: {', '.join(sorted(names))})")
    return {k: v for k, v in raw.items() if k in names}
