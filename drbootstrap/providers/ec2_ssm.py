"""Images published as SSM parameters (how AWS and most vendors publish their current images): the
parameter's value, read with the same credentials as the EC2 calls (the spec's keys, the AWS_*
variables, a profile or the SDK's chain) in the provider's region. Where the SSM API is reached:
extra.ssm_endpoint, else AWS_ENDPOINT_URL_SSM, else AWS_ENDPOINT_URL (a stand-in serving every
AWS API at one address), else AWS's own for the region; never the EC2 `endpoint`, which may be an
EC2-only address (a VPC interface endpoint)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from drbootstrap.errors import ProviderError
from drbootstrap.providers.settings import ProviderSettings


@dataclass(frozen=True)
class ParameterValue:
    name: str
    value: str | None  # None: no such parameter


def ssm_endpoint(settings: ProviderSettings, environ: Mapping[str, str]) -> str | None:
    given = settings.extra.get("ssm_endpoint") or environ.get("AWS_ENDPOINT_URL_SSM") or environ.get("AWS_ENDPOINT_URL")
    return str(given) if given else None


def read_parameters(settings: ProviderSettings, region: str, names: list[str],
                    environ: Mapping[str, str] | None = None) -> dict[str, ParameterValue]:
    """name -> its value (None when the parameter does not exist), one GetParameters per 10 names."""
    import boto3
    import botocore.config
    import botocore.exceptions

    from drbootstrap.providers.ec2_driver import aws_credentials

    environ = os.environ if environ is None else environ
    key, secret, token = aws_credentials(settings, environ)
    client = boto3.client("ssm", region_name=region, endpoint_url=ssm_endpoint(settings, environ),
                          aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
                          config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 5},
                                                        connect_timeout=10, read_timeout=30))
    found: dict[str, ParameterValue] = {}
    for start in range(0, len(names), 10):  # GetParameters takes at most 10 names
        batch = names[start:start + 10]
        try:
            answer = client.get_parameters(Names=batch)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code") or type(error).__name__
            raise ProviderError(f"provider {settings.name}: reading SSM parameters {', '.join(batch)} failed ({code})",
                                hint="check the region, the endpoint and that the credentials may ssm:GetParameters"
                                ) from None
        for parameter in answer.get("Parameters", []):
            found[parameter["Name"]] = ParameterValue(parameter["Name"], str(parameter.get("Value") or "") or None)
    return {name: found.get(name) or found.get(name.lstrip("/")) or ParameterValue(name, None) for name in names}
