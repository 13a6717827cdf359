"""Field types of the spec: each one checks its own syntax and says how to fix a bad value.

They exist so that nothing from the spec can break a hosts file, a DNS record or a shell line.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, ValidationInfo
from pydantic_core import PydanticCustomError

from drbootstrap.spec.secrets import SecretRef

# RFC 1123 label, lower case only (names are compared case-insensitively by DNS; one spelling).
LABEL_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+=,-]{0,254}$")
PUPPET_CLASS_PATTERN = re.compile(r"^(::)?[a-z][a-z0-9_]*(::[a-z][a-z0-9_]*)*$")
PUPPET_ENVIRONMENT_PATTERN = re.compile(r"^[a-z0-9_]{1,64}$")
PUPPET_TAG_PATTERN = re.compile(r"^[a-z0-9_][a-z0-9_:.-]{0,63}$")
SAFE_PATH_PATTERN = re.compile(r"^/[A-Za-z0-9._/@+=,-]*$")

_CHARACTER_NAMES = {
    "\n": "a newline",
    "\r": "a carriage return",
    "\t": "a tab",
    " ": "a space",
    "'": "a quote (')",
    '"': 'a quote (")',
    "`": "a backquote",
    ";": "a ';'",
    "&": "a '&'",
    "|": "a '|'",
    "$": "a '$'",
    "<": "a '<'",
    ">": "a '>'",
    "\\": "a backslash",
    "#": "a '#'",
}


def invalid(message: str, hint: str = "", at: str | None = None) -> PydanticCustomError:
    """A located spec problem raised from a validator; `at` names a sub-key to point at."""
    return PydanticCustomError("drb", "{message}", {"message": message, "hint": hint, "at": at})


def dangerous_character(value: str) -> str | None:
    """The first character of `value` that could inject into a hosts file or a shell, named."""
    for character in value:
        if character in _CHARACTER_NAMES:
            return _CHARACTER_NAMES[character]
        if not character.isprintable():
            return f"a control character (U+{ord(character):04X})"
    return None


def _reject_injection(value: str, what: str) -> None:
    found = dangerous_character(value)
    if found:
        raise invalid(
            f"{what} contains {found}, which could inject into a hosts file or a shell",
            "use only letters, digits and . _ - : / @ + = ,",
        )


def check_label(value: str, what: str = "hostname") -> str:
    """An RFC 1123 label in lower case: a hostname, or a name that becomes part of one."""
    _reject_injection(value, f"{what} '{value}'" if value.isprintable() else what)
    if value != value.lower() and LABEL_PATTERN.match(value.lower()):
        raise invalid(f"{what} '{value}' has upper-case letters", f"write it as '{value.lower()}'")
    if len(value) > 63:
        raise invalid(
            f"{what} '{value}' is longer than 63 characters",
            "shorten it to 63 characters or fewer, as RFC 1123 requires",
        )
    if not LABEL_PATTERN.match(value):
        raise invalid(
            f"'{value}' is not a valid {what} (RFC 1123)",
            "use a-z, 0-9 and '-', not starting or ending with '-', e.g. web01",
        )
    return value


def label_check(what: str) -> Callable[[str], str]:
    """check_label naming the thing being checked in its messages."""
    return lambda value: check_label(value, what)


def check_dns_name(value: str) -> str:
    _reject_injection(value, "DNS name")
    name = value.rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(LABEL_PATTERN.match(label) for label in labels):
        raise invalid(
            f"'{value}' is not a valid DNS name",
            "use lower-case labels of a-z, 0-9 and '-' joined by dots, e.g. demo.internal",
        )
    return name


def check_role(value: str) -> str:
    _reject_injection(value, "role")
    if not ROLE_PATTERN.match(value):
        raise invalid(
            f"role '{value}' is not a valid role name",
            "start with a-z, then a-z, 0-9 or '-', at most 32 characters, e.g. web",
        )
    return value


def check_token(value: str) -> str:
    _reject_injection(value, f"'{value}'" if value.isprintable() else "the value")
    if not TOKEN_PATTERN.match(value):
        raise invalid(
            f"'{value}' is not a valid identifier",
            "start with a letter or digit; use letters, digits and . _ - : / @ + = ,",
        )
    return value


TAG_KEY_PATTERN = re.compile(r"^[A-Za-z0-9 ._:/=+@-]{1,128}$")
TAG_VALUE_PATTERN = re.compile(r"^[A-Za-z0-9 ._:/=+@-]{0,256}$")
RESERVED_TAG_PREFIXES = ("aws:", "drbootstrap:")


def check_tag_key(value: str) -> str:
    """A custom tag's key (cost centre, owner): the characters every cloud's tags allow, none of its own."""
    if not TAG_KEY_PATTERN.match(value):
        raise invalid(f"tag key {value!r} is not a valid tag key",
                      "use 1-128 letters, digits, spaces and . _ : / = + @ -")
    if value.lower().startswith(RESERVED_TAG_PREFIXES):
        raise invalid(f"tag key {value!r} uses a reserved prefix",
                      "aws: belongs to the cloud and drbootstrap: to drbootstrap's own tags; pick another key")
    return value


def check_tag_value(value: str) -> str:
    if not TAG_VALUE_PATTERN.match(value):
        raise invalid(f"tag value {value!r} is not a valid tag value",
                      "use up to 256 letters, digits, spaces and . _ : / = + @ -")
    return value


def check_absolute_path(value: str) -> str:
    _reject_injection(value, "path")
    if not SAFE_PATH_PATTERN.match(value):
        raise invalid(f"'{value}' is not an absolute path", "write it from the root, e.g. /srv/data")
    if ".." in Path(value).parts:
        raise invalid(f"path '{value}' contains '..'", "write the path without '..'")
    return value


def check_command(value: str) -> str:
    if not value.strip():
        raise invalid("the command is empty", "write the shell command to run on the node")
    if "\x00" in value or any(not c.isprintable() and c not in "\n\t" for c in value):
        raise invalid("the command contains a control character", "remove it")
    return value


def check_cidr(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError as error:
        raise invalid(f"'{value}' is not a valid IPv4 CIDR: {error}", "write it as 10.213.0.0/24") from None
    if network.prefixlen > 29:
        raise invalid(f"network {value} is too small", "use a /29 or larger, e.g. 10.213.0.0/24")
    return str(network)


def check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise invalid(f"'{value}' is not a valid IP address", "write it as 192.0.2.53") from None


def check_host(value: str) -> str:
    """An IP address or a DNS name."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return check_dns_name(value)


def check_url(value: str) -> str:
    _reject_injection(value, "URL")
    if not re.match(r"^https?://[^/\s]+", value):
        raise invalid(f"'{value}' is not an http(s) URL", "write it as http://host:port/path")
    return value


def check_hypervisor_uri(value: str) -> str:
    """A hypervisor connection URI (libvirt's: driver[+transport]://[host]/path[?options])."""
    _reject_injection(value, "URI")
    if not re.match(r"^[a-z][a-z0-9]*(\+[a-z0-9]+)?://[A-Za-z0-9._:@\[\]-]*/[A-Za-z0-9._/=?&%,+-]*$", value):
        raise invalid(f"'{value}' is not a hypervisor URI", "write it as qemu:///system or qemu+ssh://host/system")
    return value


def check_puppet_class(value: str) -> str:
    _reject_injection(value, "Puppet class")
    if not PUPPET_CLASS_PATTERN.match(value):
        raise invalid(f"'{value}' is not a valid Puppet class name", "write it as role::web")
    return value


def check_puppet_environment(value: str) -> str:
    _reject_injection(value, "Puppet environment")
    if not PUPPET_ENVIRONMENT_PATTERN.match(value):
        raise invalid(f"'{value}' is not a valid Puppet environment name", "use a-z, 0-9 and _")
    return value


def check_puppet_tag(value: str) -> str:
    _reject_injection(value, "Puppet tag")
    if not PUPPET_TAG_PATTERN.match(value):
        raise invalid(f"'{value}' is not a valid Puppet tag", "use a-z, 0-9, _ : . and -")
    return value


def check_hostname_pattern(value: str) -> str:
    """A Python format string whose only field is `{n}` (an integer spec allowed: `{n:02}`)."""
    _reject_injection(value, "hostname_pattern")
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as error:
        raise invalid(f"'{value}' is not a valid pattern: {error}", "write it like web{n:02}") from None
    if fields != ["n"]:
        raise invalid(
            f"'{value}' must contain the field {{n}} exactly once",
            "write it like web{n:02}, which gives web01, web02, ...",
        )
    try:
        sample = value.format(n=1)
    except (ValueError, TypeError) as error:
        raise invalid(f"'{value}' is not a valid pattern: {error}", "write it like web{n:02}") from None
    if not LABEL_PATTERN.match(sample):
        raise invalid(f"'{value}' gives '{sample}', not a valid hostname (RFC 1123)", "use a-z, 0-9 and '-'")
    return value


def check_record_name(value: str) -> str:
    return value if value == "@" else check_label(value, "record name")


def check_scalar(value: Any) -> Any:
    """A driver option: text, a number, true/false, or a list of those."""
    scalars = (str, int, float, bool)
    if isinstance(value, scalars) or (isinstance(value, list) and all(isinstance(v, scalars) for v in value)):
        return value
    raise invalid(
        "must be text, a number, true/false or a list of those", "driver options are key: value pairs"
    )


def parse_secret(value: Any, info: ValidationInfo) -> SecretRef:
    """A credential must be `${env:NAME}` or `${file:PATH}`; a literal secret is refused."""
    if isinstance(value, SecretRef):
        return value
    if not isinstance(value, str):
        raise invalid("a secret must be a reference", "write ${env:NAME} or ${file:PATH}")
    base_dir = (info.context or {}).get("base_dir")
    reference = SecretRef.parse(value, base_dir)
    if reference is None:
        # Never echo the value: it is probably the secret itself.
        raise invalid(
            "a secret is written in the spec itself",
            "move it to an environment variable or a 0600 file and write ${env:NAME} or ${file:PATH}",
        )
    return reference


Label = Annotated[str, AfterValidator(check_label)]
EnvironmentName = Annotated[str, AfterValidator(label_check("environment name"))]
SiteName = Annotated[str, AfterValidator(label_check("site name"))]
VolumeName = Annotated[str, AfterValidator(label_check("volume name"))]
DnsName = Annotated[str, AfterValidator(check_dns_name)]
Role = Annotated[str, AfterValidator(check_role)]
Token = Annotated[str, AfterValidator(check_token)]
TagKey = Annotated[str, AfterValidator(check_tag_key)]
TagValue = Annotated[str, AfterValidator(check_tag_value)]
AbsolutePath = Annotated[str, AfterValidator(check_absolute_path)]
Command = Annotated[str, AfterValidator(check_command)]
Cidr = Annotated[str, AfterValidator(check_cidr)]
IpAddress = Annotated[str, AfterValidator(check_ip)]
Host = Annotated[str, AfterValidator(check_host)]
Url = Annotated[str, AfterValidator(check_url)]
HypervisorUri = Annotated[str, AfterValidator(check_hypervisor_uri)]
PuppetClass = Annotated[str, AfterValidator(check_puppet_class)]
PuppetEnvironment = Annotated[str, AfterValidator(check_puppet_environment)]
PuppetTag = Annotated[str, AfterValidator(check_puppet_tag)]
HostnamePattern = Annotated[str, AfterValidator(check_hostname_pattern)]
RecordName = Annotated[str, AfterValidator(check_record_name)]
ScalarValue = Annotated[Any, AfterValidator(check_scalar)]
# Dumped (model_dump/json) as the reference text, never the value.
Secret = Annotated[SecretRef, BeforeValidator(parse_secret), PlainSerializer(str, return_type=str)]
