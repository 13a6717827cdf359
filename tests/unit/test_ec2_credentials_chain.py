"""EC2 credentials through the AWS SDK's standard chain (extra.profile / extra.credential_chain):
a profile of the shared files is read, a missing one is one line, and nothing changes without them."""

from __future__ import annotations

import pytest

from drbootstrap.errors import ProviderError
from drbootstrap.providers.ec2_driver import ec2_driver_kwargs
from drbootstrap.providers.settings import ProviderSettings

KEY, SECRET = "AKIAPROFILEEXAMPLE00", "profile/secret/EXAMPLEKEY"


@pytest.fixture
def aws_files(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[ops]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
                           "aws_session_token = session-token-example\n")
    config = tmp_path / "config"
    config.write_text("[profile ops]\nregion = eu-west-1\n")
    return {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(config),
            "AWS_EC2_METADATA_DISABLED": "true"}


def test_a_named_profile_gives_the_driver_its_keys_and_session_token(aws_files, monkeypatch):
    for name, value in aws_files.items():
        monkeypatch.setenv(name, value)
    kwargs = ec2_driver_kwargs(ProviderSettings(name="ec2", region="us-east-1", extra={"profile": "ops"}), aws_files)
    assert (kwargs["key"], kwargs["secret"], kwargs["token"]) == (KEY, SECRET, "session-token-example")
    assert "profile" not in kwargs  # drbootstrap's own key, never the driver's


def test_a_profile_that_does_not_exist_is_one_line(aws_files, monkeypatch):
    for name, value in aws_files.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ProviderError) as refused:
        ec2_driver_kwargs(ProviderSettings(name="ec2", region="us-east-1", extra={"profile": "nope"}), aws_files)
    assert "AWS profile 'nope' does not exist" in str(refused.value) and "\n" not in str(refused.value)


def test_without_keys_profile_or_chain_the_error_names_every_way_to_give_them(aws_files):
    with pytest.raises(ProviderError) as refused:
        ec2_driver_kwargs(ProviderSettings(name="ec2", region="us-east-1"), {})
    assert "extra.profile" in str(refused.value) and "credential_chain" in str(refused.value)
