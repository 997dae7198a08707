"""``cachebridge package --bucket``: a name S3 would refuse is a one-line usage error
(exit 2) naming the rule, before any AWS client is made; a valid name uploads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from cachebridge import cli as cli_module
from cachebridge.cli import cli
from cachebridge.deploy.artifacts import BUCKET_NAME_RULE, bucket_name_problem


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """moto's S3, and the services the CLI asked its clients for."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    asked: list[str] = []
    real = cli_module._clients

    def counting(region: str | None, profile: str | None) -> Any:
        clients = real(region, profile)

        def client(service: str) -> Any:
            asked.append(service)
            return clients(service)

        return client

    monkeypatch.setattr(cli_module, "_clients", counting)
    with mock_aws():
        yield asked


@pytest.mark.parametrize(
    "bucket",
    [
        "Not_A_Valid_Bucket!",
        "ab",
        "a" * 64,
        "-starts-with-hyphen",
        "ends-with-dot.",
        "two..dots",
        "192.168.5.4",
        "xn--punycode",
        "sthree-reserved",
        "amzn-s3-demo-bucket",
        "access-point-s3alias",
        "object-lambda--ol-s3",
        "multi-region.mrap",
    ],
)
def test_an_invalid_bucket_is_a_one_line_usage_error_before_any_client(aws: list[str], bucket: str) -> None:
    done = CliRunner().invoke(cli, ["package", "--bucket", bucket, "--region", "us-east-1"])
    assert done.exit_code == 2, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Error: --bucket: {bucket!r} is not an S3 bucket name")
    assert "Traceback" not in done.output and "botocore" not in done.output
    assert aws == []  # refused before any AWS client was asked for
    assert boto3.client("s3", region_name="us-east-1").list_buckets()["Buckets"] == []


def test_the_error_names_the_rule() -> None:
    problem = bucket_name_problem("Not_A_Valid_Bucket!")
    assert problem is not None and BUCKET_NAME_RULE in problem
    assert "lowercase" in BUCKET_NAME_RULE and "3-63" in BUCKET_NAME_RULE


@pytest.mark.parametrize("bucket", ["abc", "cachebridge-artifacts-123456789012-us-east-1", "my.bucket.name", "a" * 63, "1-2-3"])
def test_a_valid_bucket_name_passes_and_the_zip_lands_there(aws: list[str], bucket: str) -> None:
    assert bucket_name_problem(bucket) is None
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    done = CliRunner().invoke(cli, ["package", "--bucket", bucket, "--region", "us-east-1", "--json"])
    assert done.exit_code == 0, done.output
    assert aws == ["s3"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == 1 and keys[0].startswith("cachebridge/lambda-") and keys[0].endswith(".zip")
