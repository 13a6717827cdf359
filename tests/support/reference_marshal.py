"""drbootstrap's Marshal writer as it was over the `rubymarshal` package: the reference the own
writer (drbootstrap/messaging/marshal_writer.py) must match byte for byte."""

from __future__ import annotations

from typing import Any

from rubymarshal.classes import RubyString
from rubymarshal.writer import Writer
from rubymarshal.writer import writes as _writes

from drbootstrap.messaging.marshal_writer import FIXNUM_MAX, FIXNUM_MIN, AsciiStr


class _RubyWriter(Writer):
    def __init__(self, fd: Any) -> None:
        super().__init__(fd)
        self._temporaries: list[Any] = []

    def write(self, obj: Any) -> None:
        if isinstance(obj, AsciiStr):
            self._temporaries.append(RubyString(str(obj), {"E": False}))
            self.write_ruby_string(self._temporaries[-1])
        elif isinstance(obj, tuple):
            self._temporaries.append(list(obj))
            super().write(self._temporaries[-1])
        else:
            super().write(obj)

    def write_int(self, obj: int) -> None:
        if FIXNUM_MIN <= obj <= FIXNUM_MAX:
            self.fd.write(b"i")
            self.write_long(obj)
            return
        self.fd.write(b"l")
        self.fd.write(b"-" if obj < 0 else b"+")
        magnitude = abs(obj)
        shorts = (magnitude.bit_length() + 15) // 16
        self.write_long(shorts)
        self.fd.write(magnitude.to_bytes(shorts * 2, "little"))


def reference_dumps(value: Any) -> bytes:
    return _writes(value, cls=_RubyWriter)
