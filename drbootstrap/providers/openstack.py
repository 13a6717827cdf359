"""OpenStack driver construction (Keystone v3): from the spec's clouds.yaml-style settings, a cloud
of a clouds.yaml file named by extra.cloud or OS_CLOUD, or OS_* variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from libcloud.compute.base import NodeDriver

from drbootstrap.errors import ProviderError
from drbootstrap.providers.settings import ProviderSettings, split_extra

# Settings read by name (clouds.yaml's auth: block, or flat in the spec's extra), not driver kwargs.
CLOUDS_YAML_KEYS = frozenset({"auth", "auth_url", "username", "project_name", "user_domain_name",
                              "project_domain_id", "region_name", "cloud"})
# Where openstacksdk looks for clouds.yaml, in its order (OS_CLIENT_CONFIG_FILE first).
CLOUDS_YAML_PLACES = ("clouds.yaml", "~/.config/openstack/clouds.yaml", "/etc/openstack/clouds.yaml")


@dataclass(frozen=True)
class DriverArguments:
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # the first two arguments are the credentials
        return f"DriverArguments(args=(***), kwargs={sorted(self.kwargs)})"


def _auth_setting(settings: ProviderSettings, environ: Mapping[str, str], key: str, variable: str) -> str | None:
    """clouds.yaml puts auth fields under `auth:`; accept them there, at the top of extra, or OS_*."""
    auth = settings.extra.get("auth") or {}
    return auth.get(key) or settings.extra.get(key) or environ.get(variable)


def named_cloud(settings: ProviderSettings, environ: Mapping[str, str]) -> dict[str, Any]:
    """The clouds.yaml entry named by extra.cloud, else OS_CLOUD ({} when neither names one): its
    `auth` and `region_name`, read from the first clouds.yaml found."""
    import yaml

    name = settings.extra.get("cloud") or environ.get("OS_CLOUD")
    if not name:
        return {}
    places = [environ["OS_CLIENT_CONFIG_FILE"]] if environ.get("OS_CLIENT_CONFIG_FILE") else []
    for place in [*places, *CLOUDS_YAML_PLACES]:
        path = Path(place).expanduser()
        if path.is_file():
            try:
                clouds = (yaml.safe_load(path.read_text()) or {}).get("clouds") or {}
            except (OSError, yaml.YAMLError, AttributeError):
                raise ProviderError(f"{path}: not a clouds.yaml file", hint="fix its `clouds:` mapping") from None
            if name not in clouds:
                raise ProviderError(f"provider openstack: cloud {name!r} is not in {path}",
                                    hint=f"pick one of: {', '.join(sorted(clouds)) or 'none'}")
            return dict(clouds[name] or {})
    raise ProviderError(f"provider openstack: cloud {name!r} named but no clouds.yaml found",
                        hint="put it in ~/.config/openstack/clouds.yaml or set OS_CLIENT_CONFIG_FILE")


def _with_named_cloud(settings: ProviderSettings, environ: Mapping[str, str]) -> tuple[ProviderSettings, dict]:
    """SETTINGS with the named cloud's auth and region under its extra (the spec's own keys win), and
    the cloud's auth block (for its password or application credential)."""
    cloud = named_cloud(settings, environ)
    if not cloud:
        return settings, {}
    auth = dict(cloud.get("auth") or {})
    extra = {"auth": {**auth, **dict(settings.extra.get("auth") or {})}, **{k: v for k, v in settings.extra.items()
                                                                           if k != "auth"}}
    if cloud.get("region_name"):
        extra.setdefault("region_name", cloud["region_name"])
    return replace(settings, extra=extra), auth


def openstack_driver_arguments(settings: ProviderSettings, environ: Mapping[str, str] | None = None) -> DriverArguments:
    """Positional credentials and keyword settings for libcloud's OpenStack driver, Keystone v3."""
    environ = os.environ if environ is None else environ
    settings, cloud_auth = _with_named_cloud(settings, environ)
    auth_url = settings.endpoint or _auth_setting(settings, environ, "auth_url", "OS_AUTH_URL")
    if not auth_url:
        raise ProviderError("provider openstack: no Keystone URL", hint="set endpoint (auth_url) or OS_AUTH_URL")
    app_id = settings.secret("application_credential_id") or cloud_auth.get("application_credential_id") \
        or environ.get("OS_APPLICATION_CREDENTIAL_ID")
    app_secret = settings.secret("application_credential_secret") \
        or cloud_auth.get("application_credential_secret") or environ.get("OS_APPLICATION_CREDENTIAL_SECRET")
    # clouds.yaml writes .../v3; libcloud appends /v3/auth/tokens itself.
    base_url = auth_url.rstrip("/").removesuffix("/v3")
    kwargs: dict[str, Any] = {"ex_force_auth_url": base_url, "api_version": "2.2"}
    region = settings.region or settings.extra.get("region_name") or environ.get("OS_REGION_NAME")
    if region:
        kwargs["ex_force_service_region"] = region
    if app_id and app_secret:
        kwargs["ex_force_auth_version"] = "3.x_appcred"
        args: tuple[Any, ...] = (app_id, app_secret)
    else:
        username = settings.secret("username", "key") or _auth_setting(settings, environ, "username", "OS_USERNAME")
        password = settings.secret("password", "secret") or cloud_auth.get("password") or environ.get("OS_PASSWORD")
        project = _auth_setting(settings, environ, "project_name", "OS_PROJECT_NAME") \
            or _auth_setting(settings, environ, "ex_tenant_name", "OS_TENANT_NAME")
        if not username or not password or not project:
            raise ProviderError("provider openstack: need a username, password and project",
                                hint="set credentials username/password and auth.project_name in the spec, "
                                     "or OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME")
        kwargs.update(
            ex_force_auth_version="3.x_password",
            ex_tenant_name=project,
            ex_domain_name=_auth_setting(settings, environ, "user_domain_name", "OS_USER_DOMAIN_NAME") or "Default",
            ex_tenant_domain_id=_auth_setting(settings, environ, "project_domain_id", "OS_PROJECT_DOMAIN_ID")
            or "default",
        )
        args = (username, password)
    from libcloud.compute.drivers.openstack import OpenStack_2_NodeDriver

    constructor_extra, _ = split_extra(OpenStack_2_NodeDriver, settings.extra)
    kwargs.update({k: v for k, v in constructor_extra.items() if k not in CLOUDS_YAML_KEYS})
    return DriverArguments(args=args, kwargs=kwargs)


def build_openstack_driver(settings: ProviderSettings, *, environ: Mapping[str, str] | None = None) -> NodeDriver:
    from libcloud.compute.providers import Provider, get_driver

    arguments = openstack_driver_arguments(settings, environ)
    return get_driver(Provider.OPENSTACK)(*arguments.args, **arguments.kwargs)
