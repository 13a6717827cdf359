"""Google Compute Engine driver construction: a service account from the spec or GOOGLE_* variables."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from libcloud.compute.base import NodeDriver

from drbootstrap.errors import ProviderError
from drbootstrap.providers.openstack import DriverArguments
from drbootstrap.providers.settings import ProviderSettings


def gce_driver_arguments(settings: ProviderSettings, environ: Mapping[str, str] | None = None) -> DriverArguments:
    """Service account e-mail and key file, project and zone for libcloud's GCENodeDriver.

    The key file is the spec's `service_account_file` credential or GOOGLE_APPLICATION_CREDENTIALS;
    the e-mail and project default to the ones inside that file.
    """
    environ = os.environ if environ is None else environ
    key_file = settings.secret("service_account_file", "key") or environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not key_file:
        raise ProviderError("provider gce: no service account key",
                            hint="set credentials service_account_file, or GOOGLE_APPLICATION_CREDENTIALS")
    from_file: dict = {}
    path = Path(key_file)
    if path.is_file():
        try:
            from_file = json.loads(path.read_text())
        except (OSError, ValueError):
            raise ProviderError(f"provider gce: {path} is not a service account JSON key",
                                hint="download the key as JSON from the cloud console") from None
    email = settings.secret("service_account_email", "user_id") or from_file.get("client_email")
    project = settings.extra.get("project") or environ.get("GOOGLE_CLOUD_PROJECT") \
        or environ.get("CLOUDSDK_CORE_PROJECT") or from_file.get("project_id")
    if not email or not project:
        raise ProviderError("provider gce: need a service account e-mail and a project",
                            hint="use a JSON key that names both, or set extra.project and "
                                 "credentials service_account_email")
    kwargs = {"project": project, "auth_type": "SA",
              **{k: v for k, v in settings.extra.items() if k != "project"}}
    if settings.zone:
        kwargs["datacenter"] = settings.zone
    return DriverArguments(args=(email, key_file), kwargs=kwargs)


def build_gce_driver(settings: ProviderSettings, *, environ: Mapping[str, str] | None = None) -> NodeDriver:
    """Note: libcloud's GCE driver fetches a token (and the zone) while it is constructed."""
    from libcloud.compute.providers import Provider, get_driver

    arguments = gce_driver_arguments(settings, environ)
    return get_driver(Provider.GCE)(*arguments.args, **arguments.kwargs)
