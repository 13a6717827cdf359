"""The provider registry: a provider name -> its Provider class, as libcloud's set_driver /
get_driver do for drivers. Names not registered are libcloud's own, served by LibcloudProvider."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from libcloud.compute.base import NodeDriver

from drbootstrap.providers.base import Provider
from drbootstrap.providers.settings import ProviderSettings
from drbootstrap.providers.throttle import RetryEvent
from drbootstrap.providers.values import EnvironmentScope

# name -> "module:Class", imported on first use (the CLI's --help must not import libcloud's drivers).
_PROVIDERS: dict[str, str] = {
    "local": "drbootstrap.providers.local.provider:LocalProvider",
    "ec2": "drbootstrap.providers.ec2:EC2Provider",
    "aws": "drbootstrap.providers.ec2:EC2Provider",
    "eucalyptus": "drbootstrap.providers.ec2:EucalyptusProvider",
    "libvirt": "drbootstrap.providers.libvirt.provider:LibvirtProvider",
}
LIBCLOUD_PROVIDER = "drbootstrap.providers.libcloud_provider:LibcloudProvider"


def register_provider(name: str, reference: str) -> None:
    """Serve provider `name` with the Provider class at "module:Class"."""
    _PROVIDERS[name.lower()] = reference


def provider_class(name: str) -> type[Provider]:
    """The Provider class for a provider name; any other name goes to generic libcloud."""
    module_name, _, class_name = _PROVIDERS.get(name.lower(), LIBCLOUD_PROVIDER).partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_provider(settings: ProviderSettings, scope: EnvironmentScope, *,
                    on_retry: Callable[[RetryEvent], None] | None = None,
                    driver_factory: Callable[[], NodeDriver] | None = None) -> Provider:
    """The provider for the spec's provider block, working for one environment."""
    return provider_class(settings.name)(settings, scope, on_retry=on_retry, driver_factory=driver_factory)
