"""A minimal #cloud-config interpreter for the local cloud: the same text a real cloud's cloud-init runs.

Supported keys (anything else is reported in the console log and ignored, as cloud-init does):
  write_files: [{path, content, permissions ("0644"), encoding (text|b64|base64), append}]
  bootcmd:     [command, ...]   every boot, before write_files
  runcmd:      [command, ...]   first boot only (per instance), after write_files
A command is a string (run by sh) or a list (argv, quoted for you). Frequencies follow cloud-init:
bootcmd always, write_files and runcmd once per instance. Unlike cloud-init, a failing command stops
the boot and puts the node in ERROR: a recovery must fail loudly. It is rendered to shell on the
host, so a node needs no Python.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from dataclasses import dataclass, field

import yaml

from drbootstrap.bounded_yaml import load_bounded
from drbootstrap.errors import ProviderError

CLOUD_CONFIG_HEADER = "#cloud-config"
SUPPORTED_KEYS = ("write_files", "bootcmd", "runcmd")
MAX_USER_DATA_BYTES = 16384  # as EC2 (drbootstrap.images.userdata.EC2_USER_DATA_LIMIT)


@dataclass
class WriteFile:
    path: str
    content: str = ""
    permissions: str = "0644"
    encoding: str = "text"  # text | b64 | base64
    append: bool = False

    def content_bytes(self) -> bytes:
        if self.encoding in ("b64", "base64"):
            return base64.b64decode(self.content)
        return self.content.encode()


@dataclass
class CloudConfig:
    write_files: list[WriteFile] = field(default_factory=list)
    bootcmd: list[str | list[str]] = field(default_factory=list)
    runcmd: list[str | list[str]] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        """The #cloud-config document (for images that render user-data for any cloud)."""
        body: dict = {}
        if self.write_files:
            body["write_files"] = [
                {k: v for k, v in vars(f).items() if not (k == "append" and not v)}
                for f in self.write_files
            ]
        if self.bootcmd:
            body["bootcmd"] = self.bootcmd
        if self.runcmd:
            body["runcmd"] = self.runcmd
        return CLOUD_CONFIG_HEADER + "\n" + yaml.safe_dump(body, sort_keys=False)


def user_data_kind(user_data: str | None) -> str:
    """'none', 'script' (starts with #!) or 'cloud-config'; anything else is refused."""
    if not user_data or not user_data.strip():
        return "none"
    if user_data.startswith("#!"):
        return "script"
    if user_data.lstrip().startswith(CLOUD_CONFIG_HEADER):
        return "cloud-config"
    raise ProviderError(
        f"user-data starts with {user_data.strip().splitlines()[0][:30]!r}",
        hint="the local cloud runs a `#!` script or a `#cloud-config` document",
    )


def parse_cloud_config(text: str) -> CloudConfig:
    """The write_files, bootcmd and runcmd of a #cloud-config text; ProviderError, one line, if unfit."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_USER_DATA_BYTES:
        raise ProviderError(
            f"user-data is {size} bytes, over the limit of {MAX_USER_DATA_BYTES}",
            hint="keep large files on the image and reference them from the user-data",
        )
    try:
        data = load_bounded(text) or {}
    # pyyaml's constructors raise what Python raises on odd scalars (!!bool maybe: KeyError)
    except (yaml.YAMLError, ValueError, OverflowError, KeyError, AttributeError, TypeError, IndexError) as error:
        reason = " ".join(str(error).split())  # pyyaml's messages span lines
        raise ProviderError(f"user-data: #cloud-config is not valid YAML: {reason}") from None
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ProviderError("user-data: #cloud-config must be a mapping of keys (text)")
    if not _encodable(data):
        raise ProviderError("user-data: a value is not valid Unicode (a lone surrogate escape such as \\ud800)")
    files_data = data.get("write_files") or []
    if not isinstance(files_data, list):
        raise ProviderError("user-data: write_files must be a list of {path, content, ...}")
    try:
        files = [WriteFile(**_write_file_fields(entry)) for entry in files_data]
    except TypeError as error:
        raise ProviderError(f"user-data: write_files entry: {error}") from None
    for key in ("bootcmd", "runcmd"):
        commands = data.get(key) or []
        if not isinstance(commands, list) or not all(_is_command(c) for c in commands):
            raise ProviderError(f"user-data: {key} must be a list of commands (text, or a list of words)")
    return CloudConfig(
        write_files=files,
        bootcmd=list(data.get("bootcmd") or []),
        runcmd=list(data.get("runcmd") or []),
        ignored_keys=sorted(str(k) for k in data if k not in SUPPORTED_KEYS),
    )


def _encodable(data: object) -> bool:
    """Every text in DATA can be written out as UTF-8 (YAML's "\\ud800" escape makes one that cannot)."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(data, dict):
        return all(_encodable(key) and _encodable(value) for key, value in data.items())
    if isinstance(data, list):
        return all(_encodable(item) for item in data)
    return True


def _is_command(command: object) -> bool:
    if isinstance(command, list):
        return all(isinstance(part, (str, int, float)) and not isinstance(part, bool) for part in command)
    return isinstance(command, str)


def _write_file_fields(entry: dict) -> dict:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        raise TypeError("needs at least a `path` (text)")
    known = {"path", "content", "permissions", "encoding", "append"}
    fields = {k: v for k, v in entry.items() if k in known}
    if "permissions" in fields:
        fields["permissions"] = str(fields["permissions"])
    if fields.get("encoding", "text") not in ("text", "b64", "base64"):
        raise TypeError(f"encoding {str(fields['encoding'])[:20]!r} is not text, b64 or base64")
    content = fields.get("content", "")
    if not isinstance(content, str):
        raise TypeError("`content` must be text")
    if fields.get("encoding") in ("b64", "base64"):
        try:
            base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise TypeError("`content` is not base64") from None
    fields["append"] = fields.get("append") is True
    return fields


def render_per_boot(config: CloudConfig) -> str:
    """Shell for every boot: bootcmd."""
    lines = ["set -e"]
    if config.ignored_keys:
        ignored = shlex.quote(f"drb-cloud: cloud-config keys ignored here: {', '.join(config.ignored_keys)}")
        lines.append(f"echo {ignored}")
    lines += [_command(c) for c in config.bootcmd]
    return "\n".join(lines) + "\n"


def render_per_instance(config: CloudConfig) -> str:
    """Shell for the first boot: write_files, then runcmd."""
    lines = ["set -e"]
    for wf in config.write_files:
        encoded = base64.b64encode(wf.content_bytes()).decode()
        redirect = ">>" if wf.append else ">"
        path = shlex.quote(wf.path)
        lines.append(f"mkdir -p \"$(dirname {path})\"")
        # 0600 before a byte is written, then its own mode: a node's files live on this host, where
        # a key written 0644 and chmodded after was readable by anyone for that moment.
        lines.append(f"(umask 077; : >>{path})")
        lines.append(f"chmod 600 {path}")
        lines.append(f"printf %s {encoded} | base64 -d {redirect}{path}")
        lines.append(f"chmod {shlex.quote(wf.permissions)} {path}")
    lines += [_command(c) for c in config.runcmd]
    return "\n".join(lines) + "\n"


def _command(command: str | list[str]) -> str:
    if isinstance(command, list):
        return shlex.join(str(part) for part in command)
    return str(command)
