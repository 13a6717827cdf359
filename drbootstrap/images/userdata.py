"""Render a node's cloud-init user-data: the files its boot script reads, and the command to run it.

The text uses only write_files (path, content, permissions), bootcmd and runcmd, so the same
user-data runs under real cloud-init and under the local cloud's interpreter. It carries no
secret but the node's own: its agent signing key (the shared PSK, or its own ed25519 key beside the
operator's public key it trusts), its one-time Puppet autosign token, and on the master the key of
its issuing CA for the broker's certificate (stomp+ssl; the environment CA's key never leaves the
controller, every node gets only that CA's certificate), and on a master rebuilt with
`master.restore` where to fetch its own earlier state (a short-lived URL and that archive's data
key), written 0600 and removed once boot.sh has put the state back.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Literal

import yaml

from drbootstrap.errors import DrbError
from drbootstrap.messaging.keys import OPERATOR_KEY_ID, NodeKey, agent_key_settings

EC2_USER_DATA_LIMIT = 16384  # bytes of raw user-data EC2 accepts (before its base64)
DEFAULT_CONFIG_DIR = "/etc/drbootstrap"
DEFAULT_NODE_DIR = "/var/lib/drbootstrap/node"
DEFAULT_IMAGES_DIR = "/usr/share/drbootstrap/images"
DEFAULT_RECIPES_DIR = "/usr/share/drbootstrap/recipes"
_HOSTNAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_FQDN = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


class UserDataError(DrbError):
    """The boot recipe cannot be rendered (an invalid value, or too big for the cloud)."""


class UserDataTooLarge(UserDataError):
    """Even compressed, the user-data exceeds what the cloud accepts."""


@dataclass(frozen=True)
class MasterStateToRestore:
    """Where a rebuilt master fetches its earlier state (drbootstrap.images.master_state) before
    puppetserver starts: a short-lived URL (presigned, or served once by the controller) and that
    one archive's data key when sealed. Written as one 0600 file, removed once used."""

    url: str = field(repr=False)
    key: str = field(repr=False)  # base64 data key of this archive only; "" when not sealed
    sha256: str
    size: int
    parts: tuple[str, ...]  # "ca", "code"

    def fetch_file(self) -> str:
        return json.dumps({"url": self.url, "key": self.key, "sha256": self.sha256, "size": self.size,
                           "parts": list(self.parts)}) + "\n"


@dataclass(frozen=True)
class NodeBootConfig:
    """Everything one node's boot script needs. Secrets: agent_key, autosign_token, broker_issuer_key,
    broker_cookie, master_state."""

    environment: str
    domain: str
    hostname: str  # the node's intended short name (db01); the master's is its controller name
    role: str  # "master" or the worker's role from the spec (db, web, mail)
    image: Literal["master", "worker"]
    broker_host: str  # what agents connect to: the master's address or controller name
    broker_port: int = 61613
    broker_protocol: Literal["stomp", "stomp+ssl"] = "stomp"
    broker_kind: Literal["activemq", "rabbitmq"] = "activemq"  # the master runs it; agents name destinations by it
    broker_ca: str | None = None  # stomp+ssl: the environment's CA (PEM, public) the agent verifies the broker by
    broker_issuer_cert: str | None = None  # stomp+ssl on the master: its issuing CA, signed by broker_ca
    broker_issuer_key: str | None = field(default=None, repr=False)  # and its key, written 0600
    broker_replicas: tuple[str, ...] = ()  # the broker cluster's other nodes (names): agents fail over to them
    broker_cookie: str | None = field(default=None, repr=False)  # a broker node's Erlang cookie, written 0600
    master_address: str | None = None  # the resolver workers use; None on the master itself
    controller_name: str | None = None  # the master's stable name (controller.demo.internal)
    puppet_server: str | None = None  # default: the controller name
    puppet_mode: Literal["server", "apply"] = "server"
    agent_key: str | None = field(default=None, repr=False)  # key material written 0600 on the node
    agent_key_reference: str | None = None  # or: a path already on the node (from metadata)
    agent_key_id: str | None = None  # ed25519: agent_key is this node's own key, signing as this id
    operator_public_key: str | None = None  # ed25519: the operator's public PEM, the one caller trusted
    autosign_token: str | None = field(default=None, repr=False)  # workers in autosign-token mode
    upstream_dns: tuple[str, ...] = ()  # master: dnsmasq forwards other names here when set
    config_dir: str = DEFAULT_CONFIG_DIR  # where the node's own files are written
    node_dir: str = DEFAULT_NODE_DIR  # per-node state: Puppet confdir/vardir, agent pid and log
    images_dir: str = DEFAULT_IMAGES_DIR  # where master/boot.sh and worker/boot.sh are on the node
    recipes_dir: str = DEFAULT_RECIPES_DIR  # apply mode: site.pp and modules on the node
    embed_boot_script: str | None = None  # boot.sh text to ship inside the user-data instead
    python: str = "python3"  # the node's Python with drbootstrap installed (absolute on the local cloud)
    puppet_port: int = 8140
    ssh_authorized_keys: tuple[str, ...] = ()  # every node: the operator's OpenSSH public keys (not secret)
    ssh_port: int = 22
    recipe_root: str = ""  # the recipes' drb_root fact: a prefix for every path they write
    # the agent's `backup:` settings (YAML): the volumes it backs up, their mounts and hooks
    backup_settings: str | None = None
    master_state: MasterStateToRestore | None = field(default=None, repr=False)  # master: put back at boot

    def __post_init__(self) -> None:
        problems = []
        if self.image not in ("master", "worker"):
            problems.append(f"image {self.image!r} is neither master nor worker")
        if not _HOSTNAME.match(self.hostname):
            problems.append(f"hostname {self.hostname!r} is not a DNS label (lowercase letters, digits, hyphens)")
        for label, value in (("domain", self.domain), ("broker host", self.broker_host)):
            if not _FQDN.match(value) and not _is_ip(value):
                problems.append(f"{label} {value!r} is neither a DNS name nor an IP address")
        if self.master_address is not None and not _is_ip(self.master_address):
            problems.append(f"master address {self.master_address!r} is not an IP address")
        if self.image == "worker" and self.master_address is None:
            problems.append("a worker needs the master's address (its resolver)")
        if self.agent_key is not None and self.agent_key_reference is not None:
            problems.append("give the agent key material or a reference to it, not both")
        if self.agent_key_id is not None and (self.agent_key is None or self.operator_public_key is None
                                              or "BEGIN PRIVATE KEY" not in self.agent_key):
            problems.append("an ed25519 agent key id needs the node's private key and the operator's public key")
        if self.image == "worker" and self.broker_protocol == "stomp+ssl" and not self.broker_ca:
            problems.append("a worker reaching the broker over stomp+ssl needs the environment's broker CA")
        if self.broker_ca is not None and "BEGIN CERTIFICATE" not in self.broker_ca:
            problems.append("broker_ca takes a PEM certificate")
        if (self.broker_issuer_key is None) != (self.broker_issuer_cert is None) or (
                self.broker_issuer_key is not None and (self.image != "master" or self.broker_ca is None
                                                        or "PRIVATE KEY" not in self.broker_issuer_key)):
            problems.append("a broker issuing CA (certificate and private key) goes to a master, with broker_ca")
        if self.operator_public_key is not None and "PRIVATE" in self.operator_public_key:
            problems.append("operator_public_key takes the operator's public key, never a private one")
        if self.puppet_mode not in ("server", "apply") or self.broker_protocol not in ("stomp", "stomp+ssl"):
            problems.append("puppet mode must be server|apply and broker protocol stomp|stomp+ssl")
        if self.broker_kind not in ("activemq", "rabbitmq"):
            problems.append(f"broker kind {self.broker_kind!r} is neither activemq nor rabbitmq")
        for address in self.upstream_dns:
            if not _is_ip(address):
                problems.append(f"upstream DNS server {address!r} is not an IP address")
        for key in self.ssh_authorized_keys:
            if "PRIVATE KEY" in key or len(key.split()) < 2:
                problems.append("ssh_authorized_keys takes OpenSSH public key lines (`ssh-ed25519 AAAA...`)")
        if self.master_state is not None and self.image != "master":
            problems.append("a master-state archive goes to a master")
        if problems:
            raise UserDataError(f"boot recipe for {self.hostname}: " + "; ".join(problems))

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.domain}"

    @property
    def agent_key_path(self) -> str | None:
        if self.agent_key is not None:
            return f"{self.config_dir}/agent.key"
        return self.agent_key_reference

    @property
    def trusted_keys_dir(self) -> str:
        return f"{self.config_dir}/trusted"

    @property
    def agent_backup_settings_path(self) -> str | None:
        """The agent config fragment (`backup:` volumes and hooks) boot.sh appends, when any."""
        return f"{self.config_dir}/agent-backup.yaml" if self.backup_settings else None

    @property
    def agent_keys_settings_path(self) -> str | None:
        """The agent config fragment (key id, trusted keys, policy) boot.sh appends; ed25519 only."""
        return f"{self.config_dir}/agent-keys.yaml" if self.agent_key_id is not None else None


def agent_keys_settings(config: NodeBootConfig) -> str:
    """The agent.yaml lines for an ed25519 node: its key id, the trusted keys dir, the policy
    (drbootstrap.messaging.keys.agent_key_settings; key_file is boot.sh's own line)."""
    assert config.agent_key_id is not None and config.agent_key is not None and config.agent_key_path
    node = NodeKey(config.agent_key_id, config.agent_key)
    settings = agent_key_settings(node, config.agent_key_path, config.trusted_keys_dir)
    del settings["key_file"]
    return yaml.safe_dump(settings, sort_keys=False, default_flow_style=False)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def node_env(config: NodeBootConfig) -> str:
    """The sh-sourceable settings file boot.sh reads (no secrets: those are files of their own)."""
    controller = config.controller_name or (config.master_address or config.broker_host)
    values = {
        "DRB_ENVIRONMENT": config.environment,
        "DRB_DOMAIN": config.domain,
        "DRB_HOSTNAME": config.hostname,
        "DRB_ROLE": config.role,
        "DRB_IMAGE": config.image,
        "DRB_MASTER_ADDRESS": config.master_address or "",
        "DRB_CONTROLLER": controller,
        "DRB_BROKER_HOST": config.broker_host,
        "DRB_BROKER_PORT": str(config.broker_port),
        "DRB_BROKER_PROTOCOL": config.broker_protocol,
        "DRB_BROKER_KIND": config.broker_kind,
        "DRB_BROKER_REPLICAS": " ".join(config.broker_replicas),
        "DRB_BROKER_COOKIE_FILE": f"{config.config_dir}/broker-cookie" if config.broker_cookie else "",
        "DRB_BROKER_CA_FILE": f"{config.config_dir}/broker-ca.pem" if config.broker_ca else "",
        "DRB_BROKER_ISSUER_CERT_FILE": f"{config.config_dir}/broker-issuer.pem" if config.broker_issuer_cert else "",
        "DRB_BROKER_ISSUER_KEY_FILE": f"{config.config_dir}/broker-issuer.key" if config.broker_issuer_key else "",
        "DRB_PUPPET_SERVER": config.puppet_server or controller,
        "DRB_PUPPET_MODE": config.puppet_mode,
        "DRB_RECIPES_DIR": config.recipes_dir,
        "DRB_AGENT_KEY_FILE": config.agent_key_path or "",
        "DRB_AGENT_KEYS_SETTINGS_FILE": config.agent_keys_settings_path or "",
        "DRB_AGENT_BACKUP_SETTINGS_FILE": config.agent_backup_settings_path or "",
        "DRB_AUTOSIGN_TOKEN_FILE": f"{config.config_dir}/autosign.token" if config.autosign_token else "",
        "DRB_UPSTREAM_DNS": " ".join(config.upstream_dns),
        "DRB_CONFIG_DIR": config.config_dir,
        "DRB_NODE_DIR": config.node_dir,
        "DRB_PYTHON": config.python,
        "DRB_PUPPET_PORT": str(config.puppet_port),
        "DRB_SSH_AUTHORIZED_KEYS_FILE": f"{config.config_dir}/authorized_keys" if config.ssh_authorized_keys else "",
        "DRB_SSH_PORT": str(config.ssh_port),
        "DRB_RECIPE_ROOT": config.recipe_root,
        "DRB_MASTER_STATE_FILE": f"{config.config_dir}/master-state.json" if config.master_state else "",
    }
    lines = ["# drbootstrap node settings, read by boot.sh; generated at launch"]
    lines += [f"{name}={shlex.quote(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def boot_script_path(config: NodeBootConfig) -> str:
    if config.embed_boot_script is not None:
        return f"{config.config_dir}/boot.sh"
    return f"{config.images_dir}/{config.image}/boot.sh"


def cloud_config(config: NodeBootConfig) -> dict:
    """The #cloud-config document as data: write_files then runcmd."""
    files = [{"path": f"{config.config_dir}/node.env", "permissions": "0644", "content": node_env(config)}]
    if config.agent_key is not None:
        files.append({"path": f"{config.config_dir}/agent.key", "permissions": "0600", "content": config.agent_key})
    if config.agent_key_id is not None and config.operator_public_key is not None:
        files.append({"path": f"{config.trusted_keys_dir}/{OPERATOR_KEY_ID}.pub", "permissions": "0644",
                      "content": config.operator_public_key})
        files.append({"path": str(config.agent_keys_settings_path), "permissions": "0644",
                      "content": agent_keys_settings(config)})
    if config.backup_settings:
        files.append({"path": str(config.agent_backup_settings_path), "permissions": "0644",
                      "content": config.backup_settings})
    if config.master_state is not None:
        files.append({"path": f"{config.config_dir}/master-state.json", "permissions": "0600",
                      "content": config.master_state.fetch_file()})
    if config.broker_ca is not None:
        files.append({"path": f"{config.config_dir}/broker-ca.pem", "permissions": "0644", "content": config.broker_ca})
    if config.broker_cookie is not None:
        files.append({"path": f"{config.config_dir}/broker-cookie", "permissions": "0600",
                      "content": config.broker_cookie + "\n"})
    if config.broker_issuer_cert is not None and config.broker_issuer_key is not None:
        files.append({"path": f"{config.config_dir}/broker-issuer.pem", "permissions": "0644",
                      "content": config.broker_issuer_cert})
        files.append({"path": f"{config.config_dir}/broker-issuer.key", "permissions": "0600",
                      "content": config.broker_issuer_key})
    if config.autosign_token is not None:
        files.append(
            {
                "path": f"{config.config_dir}/autosign.token",
                "permissions": "0600",
                "content": config.autosign_token + "\n",
            }
        )
    if config.ssh_authorized_keys:
        keys = "".join(key.strip() + "\n" for key in config.ssh_authorized_keys)
        files.append({"path": f"{config.config_dir}/authorized_keys", "permissions": "0644", "content": keys})
    if config.embed_boot_script is not None:
        files.append({"path": boot_script_path(config), "permissions": "0755", "content": config.embed_boot_script})
    node_env_path = shlex.quote(f"{config.config_dir}/node.env")
    # 3>&1: boot.sh's own output goes to boot.log, but it can still print the SSH host keys on
    # the console (fd 3), where the controller pins them from.
    boot = (
        f"mkdir -p {shlex.quote(config.node_dir)} && sh {shlex.quote(boot_script_path(config))} "
        f"{shlex.quote(config.config_dir)} 3>&1 >>{shlex.quote(config.node_dir + '/boot.log')} 2>&1"
    )
    # runcmd runs once per instance, after write_files; bootcmd runs on every boot but before
    # write_files, so it finds node.env only on later boots (a reboot to take the node's name).
    # The local cloud's nodes keep their files on this host, where a node relaunched under the
    # same name finds the previous instance's node.env on its first boot: that cloud says which
    # boot is the first (DRB_CLOUD_FIRST_BOOT=1), and boot.sh then runs from runcmd only, once.
    later_boot = f"[ -f {node_env_path} ] && [ \"${{DRB_CLOUD_FIRST_BOOT:-0}}\" != 1 ]"
    return {"write_files": files, "bootcmd": [f"if {later_boot}; then {boot}; fi"], "runcmd": [boot]}


class _BlockStyleDumper(yaml.SafeDumper):
    """Multi-line file contents as `|` blocks, so an operator can read the user-data."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def render_cloud_config(config: NodeBootConfig) -> str:
    """`#cloud-config` YAML text for CONFIG."""
    body = yaml.dump(
        cloud_config(config), Dumper=_BlockStyleDumper, sort_keys=False, default_flow_style=False, width=4096
    )
    return "#cloud-config\n" + body


def render_multipart(config: NodeBootConfig, extra_parts: list[tuple[str, str]]) -> str:
    """MIME multipart: our cloud-config first, then (content type, text) parts such as a shell script."""
    message = MIMEMultipart()
    message.attach(MIMEText(render_cloud_config(config), "cloud-config"))
    for content_type, text in extra_parts:
        subtype = content_type.split("/", 1)[-1]
        message.attach(MIMEText(text, subtype))
    return message.as_string()


def render_user_data(
    config: NodeBootConfig,
    *,
    extra_parts: list[tuple[str, str]] | None = None,
    limit: int = EC2_USER_DATA_LIMIT,
    allow_gzip: bool = True,
) -> bytes:
    """The user-data bytes to launch CONFIG's node with: plain when it fits, gzipped when allowed."""
    text = render_multipart(config, extra_parts) if extra_parts else render_cloud_config(config)
    data = text.encode()
    if len(data) <= limit:
        return data
    if allow_gzip:
        # cloud-init recognises gzip by its magic bytes; mtime=0 keeps the bytes reproducible.
        compressed = gzip.compress(data, mtime=0)
        if len(compressed) <= limit:
            return compressed
    raise UserDataTooLarge(
        f"user-data for {config.hostname} is {len(data)} bytes"
        + (f" ({len(compressed)} gzipped)" if allow_gzip else "")
        + f", over the cloud's limit of {limit}",
        hint="reference the boot script on the image (images_dir) instead of embedding it, or drop extra parts",
    )
