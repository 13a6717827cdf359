"""Credential references (`${env:NAME}`, `${file:PATH}`): secrets live outside the spec.

A `SecretRef` shows only its reference in repr/str/logs/exceptions; `.reveal()` returns the value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from drbootstrap.errors import DrbError
from drbootstrap.input_files import Unreadable, read_bounded_text

REFERENCE_PATTERN = re.compile(r"^\$\{(?P<kind>env|file):(?P<target>[^}]+)\}$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SECRET_FILE_BYTES = 64 * 1024  # a PEM key is a few kilobytes


class SecretResolutionError(DrbError):
    """A reference whose variable or file is missing, empty or unreadable (never shows a value)."""


class SecretRef:
    """A reference to a secret; the resolved value never appears in repr() or str()."""

    __slots__ = ("kind", "target", "base_dir", "_value")

    def __init__(self, kind: str, target: str, base_dir: Path | None = None) -> None:
        if kind not in ("env", "file"):
            raise ValueError(f"unknown reference kind {kind!r}")
        self.kind = kind
        self.target = target
        self.base_dir = base_dir
        self._value: str | None = None

    @classmethod
    def parse(cls, text: str, base_dir: Path | None = None) -> SecretRef | None:
        """The reference written as `text`, or None when `text` is not a reference."""
        match = REFERENCE_PATTERN.match(text.strip())
        if match is None:
            return None
        return cls(match["kind"], match["target"].strip(), base_dir)

    @property
    def reference(self) -> str:
        return f"${{{self.kind}:{self.target}}}"

    def path(self) -> Path:
        """For `${file:...}`: the file, with ~ expanded, relative to the spec's directory."""
        path = Path(self.target).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def resolve(self) -> str:
        """Read the secret now (and keep it); raises SecretResolutionError with a fix."""
        if self.kind == "env":
            value = self._read_env()
        else:
            value = self._read_file()
        self._value = value
        return value

    def reveal(self) -> str:
        """The secret itself: only for handing to a driver or a signer, never for printing."""
        return self._value if self._value is not None else self.resolve()

    def _read_env(self) -> str:
        if not ENV_NAME_PATTERN.match(self.target):
            raise SecretResolutionError(  # not echoed: a secret pasted in place of the name is a known slip
                "the ${env:...} reference does not name a valid environment variable",
                hint="use letters, digits and _, e.g. ${env:AWS_SECRET_ACCESS_KEY}",
            )
        value = os.environ.get(self.target)
        if value is None:
            raise SecretResolutionError(
                f"environment variable {self.target} is not set",
                hint=f"export {self.target}=... before running drbootstrap, or use --skip-secrets",
            )
        if not value.strip():
            raise SecretResolutionError(
                f"environment variable {self.target} is empty", hint=f"export a non-empty {self.target}"
            )
        return value

    def _read_file(self) -> str:
        path = self.path()
        relative_note = (
            "" if Path(self.target).expanduser().is_absolute() else " (relative to the spec's directory)"
        )
        if not path.is_file():
            raise SecretResolutionError(
                f"secret file '{self.target}'{relative_note} does not exist",
                hint="create it with mode 0600, or fix the path",
            )
        try:
            value = read_bounded_text(path, limit=MAX_SECRET_FILE_BYTES, what="it", too_big_fix="").strip()
        except Unreadable as refusal:
            reason = refusal.what.split(" (byte")[0]  # never the bytes of a secret
            raise SecretResolutionError(
                f"secret file '{self.target}' cannot be read: {reason}",
                hint="check its permissions and contents; a secret file holds one key",
            ) from None
        if not value:
            raise SecretResolutionError(f"secret file '{self.target}' is empty", hint="put the secret in it")
        return value

    def __repr__(self) -> str:
        return f"SecretRef({self.reference!r})"

    def __str__(self) -> str:
        return self.reference

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretRef):
            return NotImplemented
        return (self.kind, self.target) == (other.kind, other.target)

    def __hash__(self) -> int:
        return hash((self.kind, self.target))
