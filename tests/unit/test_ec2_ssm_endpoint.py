"""Where an image's SSM parameter is read (providers/ec2_ssm.py): the spec's ssm_endpoint, then the
SDK's variables, never the EC2 endpoint."""

from __future__ import annotations

from drbootstrap.providers.ec2_ssm import ssm_endpoint
from drbootstrap.providers.settings import ProviderSettings, split_extra


def test_the_ssm_endpoint_is_the_specs_then_the_sdks_variables_never_the_ec2_endpoint():
    ec2 = ProviderSettings(name="ec2", endpoint="https://vpce-1.ec2.eu-west-1.vpce.amazonaws.com")
    assert ssm_endpoint(ec2, {}) is None  # AWS's own for the region
    assert ssm_endpoint(ec2, {"AWS_ENDPOINT_URL": "http://stand-in:5000"}) == "http://stand-in:5000"
    assert ssm_endpoint(ec2, {"AWS_ENDPOINT_URL": "http://a", "AWS_ENDPOINT_URL_SSM": "http://b"}) == "http://b"
    given = ProviderSettings(name="ec2", extra={"ssm_endpoint": "http://c"})
    assert ssm_endpoint(given, {"AWS_ENDPOINT_URL_SSM": "http://b"}) == "http://c"


def test_ssm_endpoint_never_reaches_the_driver():
    from libcloud.compute.drivers.ec2 import EucNodeDriver

    constructor, create = split_extra(EucNodeDriver, {"ssm_endpoint": "http://c", "ex_iamprofile": "p"})
    assert "ssm_endpoint" not in constructor and "ssm_endpoint" not in create
