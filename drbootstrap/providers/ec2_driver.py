"""EC2 and Eucalyptus drivers from the provider block: credentials, region, endpoint, signature v4."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from libcloud.compute.base import NodeDriver
from libcloud.compute.drivers.ec2 import EC2NodeDriver, EucNodeDriver

from drbootstrap.errors import ProviderError
from drbootstrap.providers.settings import ProviderSettings, split_extra

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    secure: bool
    path: str


def parse_endpoint(url: str) -> Endpoint:
    """https://ec2.example:8773/services/compute -> host, port, TLS or not, path."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderError(f"endpoint {url!r} is not an http(s) URL", hint="write it like https://host:port/path")
    secure = parts.scheme == "https"
    return Endpoint(host=parts.hostname, port=parts.port or (443 if secure else 80), secure=secure,
                    path=parts.path or "/")


def aws_credentials(settings: ProviderSettings, environ: Mapping[str, str]) -> tuple[str, str, str | None]:
    """Access key, secret key and session token: from the spec's references, else AWS_*/EC2_*
    variables, else the AWS SDK's chain when the spec names extra.profile or extra.credential_chain,
    else the shared credentials file's profile (AWS_PROFILE, or default; the file only)."""
    key = settings.secret("access_key_id", "access_key", "key") or environ.get("AWS_ACCESS_KEY_ID") \
        or environ.get("EC2_ACCESS_KEY")
    secret = settings.secret("secret_access_key", "secret_key", "secret") \
        or environ.get("AWS_SECRET_ACCESS_KEY") or environ.get("EC2_SECRET_KEY")
    token = settings.secret("session_token", "token") or environ.get("AWS_SESSION_TOKEN")
    profile = settings.extra.get("profile")
    if (not key or not secret) and (profile or settings.extra.get("credential_chain")):
        return chain_credentials(settings, str(profile) if profile else None, environ)
    if not key or not secret:
        key, secret, token = profile_credentials(settings, environ)
    if not key or not secret:
        raise ProviderError(f"provider {settings.name}: no access key and secret key",
                            hint="set credentials access_key_id and secret_access_key in the spec, "
                                 "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or extra.profile (an AWS "
                                 "profile: SSO, assumed role...; or AWS_PROFILE) or extra.credential_chain: true "
                                 "(instance role)")
    return key, secret, token


def profile_credentials(settings: ProviderSettings, environ: Mapping[str, str]) -> tuple[str | None, ...]:
    """The keys of a profile in the AWS shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
    ~/.aws/credentials): extra.profile, else AWS_PROFILE, else `default`. A profile named but absent
    is an error; no file and no name is no credentials."""
    import configparser
    from pathlib import Path

    named = settings.extra.get("profile") or environ.get("AWS_PROFILE")
    path = Path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials")
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        raise ProviderError(f"{path}: not an AWS credentials file", hint="fix its [profile] sections") from None
    profile = str(named or "default")
    if not parser.has_section(profile):
        if named:
            raise ProviderError(f"provider {settings.name}: AWS profile {profile!r} is not in {path}",
                                hint=f"pick one of: {', '.join(parser.sections()) or 'none (the file is empty)'}")
        return None, None, None
    section = parser[profile]
    return section.get("aws_access_key_id"), section.get("aws_secret_access_key"), section.get("aws_session_token")


def chain_credentials(settings: ProviderSettings, profile: str | None,
                      environ: Mapping[str, str]) -> tuple[str, str, str | None]:
    """The AWS SDK's standard chain (botocore's): the named profile (static keys, SSO session,
    assumed role, credential process) or, without one, the environment, the shared files, web
    identity and the instance's role. Refreshed credentials are read once per driver."""
    import botocore.exceptions
    import botocore.session

    session = botocore.session.Session(profile=profile)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        if name in environ:  # the given environment's files (the process's are botocore's default)
            session.set_config_variable("config_file" if name == "AWS_CONFIG_FILE" else "credentials_file",
                                        environ[name])
    where = f"AWS profile {profile!r}" if profile else "the AWS credential chain"
    try:
        found = session.get_credentials()
    except botocore.exceptions.ProfileNotFound:
        known = ", ".join(session.available_profiles) or "none (no config or credentials file)"
        raise ProviderError(f"provider {settings.name}: {where} does not exist",
                            hint=f"pick one of: {known} (aws configure list-profiles)") from None
    except botocore.exceptions.BotoCoreError as error:
        raise ProviderError(f"provider {settings.name}: {where} gave no credentials ({type(error).__name__})",
                            hint="for an SSO profile run `aws sso login --profile NAME` first") from None
    if found is None:
        raise ProviderError(f"provider {settings.name}: {where} gave no credentials",
                            hint="configure the profile, or give credentials access_key_id and secret_access_key")
    frozen = found.get_frozen_credentials()
    return frozen.access_key, frozen.secret_key, frozen.token


def ec2_driver_kwargs(settings: ProviderSettings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for EC2NodeDriver: region, optional endpoint, signature version 4."""
    environ = os.environ if environ is None else environ
    key, secret, token = aws_credentials(settings, environ)
    region = settings.region or environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION") or DEFAULT_REGION
    if region not in EC2NodeDriver.list_regions():
        raise ProviderError(f"provider ec2: unknown region {region!r}",
                            hint="use an EC2 region name such as us-east-1, or set endpoint for another cloud")
    constructor_extra, _ = split_extra(EC2NodeDriver, settings.extra)
    constructor_extra.pop("profile", None)  # read above, not the driver's
    kwargs: dict[str, Any] = {"key": key, "secret": secret, "region": region, "signature_version": "4",
                              **constructor_extra}
    if token:
        kwargs["token"] = token
    endpoint_url = settings.endpoint or environ.get("AWS_ENDPOINT_URL_EC2") or environ.get("AWS_ENDPOINT_URL")
    if endpoint_url:
        endpoint = parse_endpoint(endpoint_url)
        kwargs.update(host=endpoint.host, port=endpoint.port, secure=endpoint.secure)
    return kwargs


def build_ec2_driver(settings: ProviderSettings, *, driver_class: type[NodeDriver] = EC2NodeDriver,
                     environ: Mapping[str, str] | None = None) -> NodeDriver:
    return driver_class(**ec2_driver_kwargs(settings, environ))


def eucalyptus_driver_kwargs(settings: ProviderSettings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Eucalyptus speaks EC2 at its own endpoint (euca2ools' EC2_URL) and path."""
    environ = os.environ if environ is None else environ
    key, secret, _ = aws_credentials(settings, environ)
    url = settings.endpoint or environ.get("EC2_URL")
    if not url:
        raise ProviderError("provider eucalyptus: no endpoint",
                            hint="set endpoint (e.g. https://cloud:8773/services/compute) or EC2_URL")
    endpoint = parse_endpoint(url)
    path = endpoint.path if endpoint.path != "/" else None  # libcloud's default /services/Eucalyptus
    constructor_extra, _ = split_extra(EucNodeDriver, settings.extra)
    constructor_extra.pop("profile", None)  # read above, not the driver's
    return {"key": key, "secret": secret, "host": endpoint.host, "port": endpoint.port,
            "secure": endpoint.secure, "path": path, **constructor_extra}


def build_eucalyptus_driver(settings: ProviderSettings, *, driver_class: type[NodeDriver] = EucNodeDriver,
                            environ: Mapping[str, str] | None = None) -> NodeDriver:
    return driver_class(**eucalyptus_driver_kwargs(settings, environ))
