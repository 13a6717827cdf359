"""The clouds. The executor asks a Provider (base.py; by name from registry.py), never which cloud
it is on. Here: libcloud's own driver registry learns the embedded cloud's driver as "local"."""

from __future__ import annotations

import threading
from typing import Any

LOCAL_PROVIDER = "local"
_registered = False
_register_lock = threading.Lock()


def register_local_provider() -> None:
    """Make libcloud's get_driver("local") return LocalNodeDriver (done once per process)."""
    global _registered
    with _register_lock:
        if _registered:
            return
        from libcloud.compute.providers import DRIVERS, set_driver

        if LOCAL_PROVIDER not in DRIVERS:
            # libcloud's type comment says a module and a class; it takes (and documents) their names.
            set_driver(LOCAL_PROVIDER, "drbootstrap.providers.local.driver", "LocalNodeDriver")  # type: ignore[arg-type]
        _registered = True


def node_driver_class(name: str) -> type:
    """libcloud's driver class for a provider name ("local", "ec2", "openstack", ...)."""
    from libcloud.compute.providers import get_driver

    if name == LOCAL_PROVIDER:
        register_local_provider()
    return get_driver(name)


def get_node_driver(name: str, **kwargs: Any) -> Any:
    """An instance of the provider's libcloud NodeDriver, built with `kwargs`.

    get_node_driver("local", state_dir=..., network="10.213.0.0/24") or
    get_node_driver("ec2", key=..., secret=..., region=...).
    """
    return node_driver_class(name)(**kwargs)
