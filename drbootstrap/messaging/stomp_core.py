"""stomp.py's core STOMP 1.2 classes without its package __init__, which imports the websocket and
multicast adapters (and websocket-client) that drbootstrap never uses: ~10 ms of every CLI call.
Also: stomp.py's header parser, replaced by one that gives the same headers without running a
regular expression over every key and value (see _parse_headers).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from types import ModuleType
from typing import Any


def _lean_stomp_package() -> None:
    """Register `stomp` with its __init__ deferred (PEP 562 module __getattr__).

    Submodules (stomp.connect, stomp.listener, ...) import as usual. The first lookup of any other
    name (`stomp.WSConnection`, `stomp.__version__`) runs the real __init__, so code elsewhere that
    does `import stomp; stomp.Connection12(...)` keeps working unchanged.
    """
    if "stomp" in sys.modules:
        return
    spec = importlib.util.find_spec("stomp")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        raise ImportError("stomp.py is not installed (pip install stomp.py)")
    package: ModuleType = importlib.util.module_from_spec(spec)

    def finish_import(name: str) -> Any:
        # `from stomp import log` probes the package with hasattr before importing the submodule.
        if not name.startswith("__") and importlib.util.find_spec(f"stomp.{name}") is not None:
            return importlib.import_module(f"stomp.{name}")
        if package.__dict__.pop("__getattr__", None) is None:
            raise AttributeError(name)
        spec.loader.exec_module(package)  # type: ignore[union-attr]  # checked before this closure
        return getattr(package, name)

    package.__getattr__ = finish_import  # type: ignore[method-assign]  # the module's PEP 562 __getattr__
    sys.modules["stomp"] = package


_lean_stomp_package()
# Imported below the call on purpose: the lean package must be registered first.

import stomp.utils as stomp_utils  # noqa: E402
from stomp.connect import StompConnection12  # noqa: E402
from stomp.exception import (  # noqa: E402
    ConnectFailedException,
    NotConnectedException,
    StompException,
)
from stomp.listener import ConnectionListener  # noqa: E402

_ESCAPED = re.compile(r"\\.")


def _parse_headers(lines: list[str], offset: int = 0) -> dict[str, str]:
    """stomp.utils.parse_headers, with its unescaping run only on a key or value that holds a
    backslash (the only ones it can change): stomp.py ran two re.sub per header line, about 40 us
    of every message an agent answers and every reply a client reads."""
    headers: dict[str, str] = {}
    for header_line in lines[offset:]:
        header_match = stomp_utils.HEADER_LINE_RE.match(header_line)
        if header_match:
            key = header_match.group("key")
            if "\\" in key:
                key = _ESCAPED.sub(stomp_utils._unescape_header, key)
            if key not in headers:
                value = header_match.group("value")
                if "\\" in value:
                    value = _ESCAPED.sub(stomp_utils._unescape_header, value)
                headers[key] = value
    return headers


stomp_utils.parse_headers = _parse_headers  # parse_frame looks it up in its module at each call

__all__ = [
    "ConnectFailedException",
    "ConnectionListener",
    "NotConnectedException",
    "StompConnection12",
    "StompException",
]
