"""Images named by SSM parameter, against a real moto server (its EC2 and SSM at one endpoint):
`plan --resolve` shows what the parameter resolves to, `up --until launch` launches it and records
it in the journal, a later run keeps that image after the parameter moved on; a missing parameter
is one line (exit 3) before anything is made."""

from __future__ import annotations

import boto3
import pytest

from drbootstrap.errors import SpecError
from drbootstrap.executor import UpOptions, down, up
from drbootstrap.journal import Journal, Step
from drbootstrap.spec import load_spec
from tests.integration.ec2.conftest import ACCESS_KEY, SECRET_KEY
from tests.integration.ec2.test_ec2_environment import live_instances
from tests.integration.ec2.test_ec2_network import (
    ENV,
    network,  # noqa: F401 - the fixture
    nothing_made,
    register_image,
    run_cli,
    write_spec,
)
from tests.integration.ec2.test_up_ec2 import tags_of

pytestmark = pytest.mark.integration

PARAMETER = "/drb/images/base-latest"


def ssm_client(url: str):
    return boto3.client("ssm", region_name="us-east-1", endpoint_url=url, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY)


def spec_with_ssm_image(tmp_path, url, network, parameter: str = PARAMETER):
    spec_file = write_spec(tmp_path, url, network)
    text = spec_file.read_text()
    before = 'worker: {name: "drb-base-*", owner: "123456789012"}'
    assert before in text
    text = text.replace(before, f"worker: {{ssm: {parameter}}}")
    spec_file.write_text(text.replace("    operator_cidr:", f"    ssm_endpoint: {url}\n    operator_cidr:"))
    return spec_file


def test_an_image_named_by_an_ssm_parameter_is_resolved_shown_launched_and_kept_by_a_later_run(
        fresh_moto, ec2_view, network, tmp_path, credentials):
    published = register_image(ec2_view, "vendor-base-1")
    ssm = ssm_client(fresh_moto.url)
    ssm.put_parameter(Name=PARAMETER, Value=published, Type="String", DataType="aws:ec2:image")
    spec_file = spec_with_ssm_image(tmp_path, fresh_moto.url, network)
    state = tmp_path / "state"

    shown = run_cli("plan", str(spec_file), "--resolve", "--state-dir", str(state))
    assert shown.returncode == 0, shown.stderr
    assert f"image worker: SSM parameter {PARAMETER} -> {published}" in shown.stdout
    assert nothing_made(ec2_view)

    spec = load_spec(spec_file)
    result, _ = up(spec, state, options=UpOptions(until=Step.LAUNCH))
    assert not result.failed, result
    instances = {tags_of(i)["drbootstrap:hostname"]: i for i in live_instances(ec2_view, ENV)}
    assert {instances[h]["ImageId"] for h in ("web01", "web02", "web03", "web04")} == {published}
    assert Journal.open(state, ENV).data.resolved["image:worker"] == published

    # The parameter moves on to a newer image: a relaunch in a later run keeps the recorded one.
    newer = register_image(ec2_view, "vendor-base-2")
    ssm.put_parameter(Name=PARAMETER, Value=newer, Type="String", DataType="aws:ec2:image", Overwrite=True)
    ec2_view.terminate_instances(InstanceIds=[instances["web02"]["InstanceId"]])
    result, _ = up(spec, state, options=UpOptions(until=Step.LAUNCH))
    assert not result.failed, result
    relaunched = {tags_of(i)["drbootstrap:hostname"]: i for i in live_instances(ec2_view, ENV)}["web02"]
    assert relaunched["ImageId"] == published != newer
    down(spec, state)
    assert live_instances(ec2_view, ENV) == []


def test_a_missing_ssm_parameter_is_one_line_before_anything_is_made(fresh_moto, ec2_view, network, tmp_path,
                                                                     credentials):
    spec_file = spec_with_ssm_image(tmp_path, fresh_moto.url, network, "/drb/images/nothing-here")
    result = run_cli("up", str(spec_file), "--state-dir", str(tmp_path / "state"), "--until", "launch", "--plain")
    assert result.returncode == SpecError.exit_status, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "provider.images.worker: SSM parameter /drb/images/nothing-here does not exist in us-east-1" in lines[0]
    assert nothing_made(ec2_view)
