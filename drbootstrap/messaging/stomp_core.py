"""stomp.py's core STOMP 1.2 classes without its package __init__, which imports the websocket and
multicast adapters (and websocket-client) that drbootstrap never uses: ~10 ms of every CLI call.
"""

from __future__ import annotations

import importlib
import importlib.util
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

from stomp.connect import StompConnection12  # noqa: E402
from stomp.exception import (  # noqa: E402
    ConnectFailedException,
    NotConnectedException,
    StompException,
)
from stomp.listener import ConnectionListener  # noqa: E402

__all__ = [
    "ConnectFailedException",
    "ConnectionListener",
    "NotConnectedException",
    "StompConnection12",
    "StompException",
]
