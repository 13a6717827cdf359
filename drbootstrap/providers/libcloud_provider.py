"""Generic libcloud: OpenStack, GCE and any other libcloud compute provider by name. Nodes are
found by their metadata tags; volumes are the environment's by name, backups are snapshots tagged
where the driver can (drbootstrap.providers.volumes)."""

from __future__ import annotations

from typing import Any

from libcloud.compute.base import NodeDriver

from drbootstrap.errors import ProviderError
from drbootstrap.providers.base import Provider
from drbootstrap.providers.nodes import LaunchRequest
from drbootstrap.providers.settings import ProviderSettings, split_extra
from drbootstrap.providers.volumes import NamedVolumeBackups


class LibcloudProvider(NamedVolumeBackups, Provider):
    """Any libcloud NodeDriver: credentials `key` and `secret`, region and `extra` as its kwargs;
    OpenStack and GCE read their own conventions (clouds.yaml, service account files)."""

    @classmethod
    def driver_family(cls, name: str) -> type[NodeDriver] | None:
        if name.lower() == "openstack":  # libcloud's registry gives a factory; this is what it builds
            from libcloud.compute.drivers.openstack import OpenStack_2_NodeDriver

            return OpenStack_2_NodeDriver
        return super().driver_family(name)

    @classmethod
    def accepted_extra_keys(cls, name: str) -> frozenset[str] | None:
        keys = super().accepted_extra_keys(name)
        if keys is None:
            return None
        if name.lower() == "openstack":
            from drbootstrap.providers.openstack import CLOUDS_YAML_KEYS

            return keys | CLOUDS_YAML_KEYS
        return keys | ({"project"} if name.lower() == "gce" else set())

    def new_driver(self) -> NodeDriver:
        return build_libcloud_driver(self.settings)

    def launch_settings(self, request: LaunchRequest) -> dict[str, Any]:
        provider_wide = split_extra(type(self.driver()), dict(self.settings.extra))[1]
        return {"create_options": {**provider_wide, **request.create_options}}


def build_libcloud_driver(settings: ProviderSettings) -> NodeDriver:
    name = settings.name.lower()
    if name == "openstack":
        from drbootstrap.providers.openstack import build_openstack_driver

        return build_openstack_driver(settings)
    if name == "gce":
        from drbootstrap.providers.gce import build_gce_driver

        return build_gce_driver(settings)
    return build_passthrough_driver(settings)


def build_passthrough_driver(settings: ProviderSettings) -> NodeDriver:
    """Any other libcloud provider: credentials `key` and `secret`, region and extra as kwargs."""
    from libcloud.compute.providers import get_driver

    try:
        driver_class = get_driver(settings.name.lower())
    except AttributeError:
        raise ProviderError(f"provider {settings.name!r}: libcloud has no compute driver of that name",
                            hint="use ec2, eucalyptus, openstack, gce or a libcloud Provider name") from None
    kwargs, _ = split_extra(driver_class, settings.extra)
    if settings.region:
        kwargs.setdefault("region", settings.region)
    try:
        secret = settings.secret("secret")
        args = (settings.secret("key"),) + ((secret,) if secret is not None else ())
        return driver_class(*args, **kwargs)
    except TypeError as error:
        raise ProviderError(f"provider {settings.name!r}: driver rejected the settings ({error})",
                            hint="check the provider's extra: keys against libcloud's driver") from None
