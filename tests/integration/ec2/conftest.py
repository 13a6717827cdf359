"""One real moto server per test module (reset between tests), and the driver pointed at it."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from drbootstrap.providers.ec2 import EC2Provider
from drbootstrap.providers.ec2_driver import build_ec2_driver
from drbootstrap.providers.settings import PlainSecret, ProviderSettings
from drbootstrap.providers.values import EnvironmentScope
from tests.support.moto_ec2 import MotoEC2NodeDriver
from tests.support.moto_server import moto_server_command, running_moto_server
from tests.support.prereq import require

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
IMAGE = "ami-12c6146b"  # one of moto's built-in images
SIZE = "t2.micro"


def ec2_settings(endpoint: str, **overrides) -> ProviderSettings:
    return ProviderSettings(name="ec2", region="us-east-1", endpoint=endpoint,
                            credentials={"access_key_id": PlainSecret(ACCESS_KEY),
                                         "secret_access_key": PlainSecret(SECRET_KEY)}, **overrides)


def driver_factory(endpoint: str):
    """A fresh driver per call."""
    return functools.partial(build_ec2_driver, ec2_settings(endpoint), driver_class=MotoEC2NodeDriver, environ={})


def ec2_provider(endpoint: str, state_dir: Path, environment: str, **extra) -> EC2Provider:
    """The EC2 provider for `environment` at `endpoint`, with moto's driver (extra driver_class), as `up` builds it."""
    settings = ec2_settings(endpoint, extra={"driver_class": "tests.support.moto_ec2:MotoEC2NodeDriver",
                                             "operator_cidr": "192.0.2.10", "retry_base_delay": 0.05,
                                             "retry_max_delay": 0.5, **extra})
    return EC2Provider(settings, EnvironmentScope(environment, state_dir, state_dir / f"{environment}.pem"))


@pytest.fixture(scope="module")
def moto():
    require(moto_server_command() is not None, "moto server (pip install 'moto[server,ec2]')")
    with running_moto_server() as server:
        yield server


@pytest.fixture
def fresh_moto(moto):
    moto.reset()
    yield moto
    moto.reset()


@pytest.fixture
def credentials(monkeypatch):
    """The references moto_env.yaml's credentials name, set for the test."""
    monkeypatch.setenv("DRB_TEST_EC2_KEY", ACCESS_KEY)
    monkeypatch.setenv("DRB_TEST_EC2_SECRET", SECRET_KEY)


@pytest.fixture
def ec2_view(fresh_moto):
    """boto3 straight at moto: an independent look at what the cloud holds, not through our layer."""
    boto3 = pytest.importorskip("boto3")
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=fresh_moto.url,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
