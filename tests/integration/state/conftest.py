"""One real moto S3 server per module, a fresh versioned bucket per test, and state settings for it."""

from __future__ import annotations

import os
import secrets
import uuid

import pytest

from drbootstrap.spec.operations import StateSpec
from tests.support.moto_server import moto_server_command, running_moto_server
from tests.support.prereq import require

KEY_VARIABLE = "DRB_TEST_STATE_KEY"
ACCESS_KEY, SECRET_KEY = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture(scope="module")
def moto():
    require(moto_server_command() is not None, "moto server (pip install 'moto[server,ec2]')")
    with running_moto_server() as server:
        yield server


@pytest.fixture
def bucket(moto):
    """A new bucket with versioning on (so a test sees every write ever made), and the view of it."""
    import boto3

    name = f"drb-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto.url, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY)
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name, client


@pytest.fixture
def state_key(monkeypatch):
    value = secrets.token_hex(32)
    monkeypatch.setenv(KEY_VARIABLE, value)
    monkeypatch.setenv("DRB_TEST_S3_ACCESS", ACCESS_KEY)
    monkeypatch.setenv("DRB_TEST_S3_SECRET", SECRET_KEY)
    return value


def s3_block(bucket: str, endpoint: str, *, lease_seconds: int = 5, retry_seconds: int = 20) -> str:
    """The spec's state: block, as YAML."""
    return (f"state: {{backend: s3, bucket: {bucket}, prefix: teams/ops, region: us-east-1, endpoint: '{endpoint}', "
            f"credentials: {{access_key_id: '${{env:DRB_TEST_S3_ACCESS}}', "
            f"secret_access_key: '${{env:DRB_TEST_S3_SECRET}}'}}, encryption_key: '${{env:{KEY_VARIABLE}}}', "
            f"lease_seconds: {lease_seconds}, retry_seconds: {retry_seconds}}}\n")


def settings(bucket: str, endpoint: str, **overrides) -> StateSpec:
    from drbootstrap.spec.secrets import SecretRef

    values = {"backend": "s3", "bucket": bucket, "prefix": "teams/ops", "region": "us-east-1", "endpoint": endpoint,
              "credentials": {"access_key_id": SecretRef("env", "DRB_TEST_S3_ACCESS"),
                              "secret_access_key": SecretRef("env", "DRB_TEST_S3_SECRET")},
              "encryption_key": SecretRef("env", KEY_VARIABLE), "lease_seconds": 5, "retry_seconds": 20,
              **overrides}
    return StateSpec.model_validate(values)


def versions(client, bucket: str, key: str) -> list[dict]:
    """Every version of KEY, oldest first, with its metadata."""
    listed = client.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    found = []
    for version in sorted(listed, key=lambda v: v["LastModified"]):
        if version["Key"] != key:
            continue
        head = client.head_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
        found.append({"version": version["VersionId"], "metadata": head.get("Metadata", {})})
    return found


def all_objects(client, bucket: str) -> dict[str, list[bytes]]:
    """Every version of every object in BUCKET."""
    found: dict[str, list[bytes]] = {}
    for version in client.list_object_versions(Bucket=bucket).get("Versions", []):
        body = client.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
        found.setdefault(version["Key"], []).append(body)
    return found


__all__ = ["all_objects", "os", "s3_block", "settings", "versions"]
