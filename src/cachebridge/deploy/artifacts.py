"""The artifact bucket (private, encrypted, versioned) and what deploy puts in it: the
Lambda zip under its content-addressed key, and a template too large to send inline."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from ..errors import DeployError
from . import package as packaging
from .clients import _code, _message, _region

__all__ = ["TEMPLATE_BODY_LIMIT", "BUCKET_FORMAT", "BUCKET_NAME_RULE", "artifact_bucket_name", "bucket_name_problem", "ensure_artifact_bucket", "upload_package"]


TEMPLATE_BODY_LIMIT = 51_200
BUCKET_FORMAT = "cachebridge-artifacts-{account}-{region}"


# Amazon S3 User Guide, "General purpose bucket naming rules": 3 to 63 characters of
# lowercase letters, numbers, dots and hyphens, beginning and ending with a letter or number;
# no two adjacent dots; not formatted as an IP address; not the reserved prefixes xn--,
# sthree-, amzn-s3-demo- or the suffixes -s3alias, --ol-s3, .mrap. (Buckets made in
# us-east-1 before March 2018 could hold capitals and underscores; the template's CodeBucket
# parameter refuses those too, so refusing them here keeps the error before any upload.)
BUCKET_NAME_RULE = "3-63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not an S3 general purpose bucket name, or None when it is one.
    Checked before any client call, so a typo is a usage error, not AWS's."""
    if not _BUCKET_NAME.fullmatch(name):
        return f"{name!r} is not an S3 bucket name: S3 bucket names are {BUCKET_NAME_RULE}"
    if ".." in name:
        return f"{name!r} is not an S3 bucket name: it holds two adjacent dots"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return f"{name!r} is not an S3 bucket name: it is formatted as an IP address"
    reserved = next((p for p in _RESERVED_PREFIXES if name.startswith(p)), None) or next((x for x in _RESERVED_SUFFIXES if name.endswith(x)), None)
    if reserved is not None:
        return f"{name!r} is not an S3 bucket name: S3 reserves {reserved!r} for its own names"
    return None


def artifact_bucket_name(account_id: str, region: str) -> str:
    return BUCKET_FORMAT.format(account=account_id, region=region)


def ensure_artifact_bucket(s3: Any, account_id: str, region: str) -> tuple[str, bool]:
    """The artifact bucket's name, and whether it was created now. A new bucket is made
    private (public access blocked, objects owned by the bucket owner), encrypted and
    versioned before anything is put in it."""
    bucket = artifact_bucket_name(account_id, region)
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account_id)
        return bucket, False
    except ClientError as exc:
        if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(f"artifact bucket {bucket}: {_message(exc)} (it may belong to another account)") from None
    try:
        kwargs: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]
            },
        )
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    except ClientError as exc:
        raise DeployError(f"artifact bucket {bucket}: {_message(exc)}") from None
    return bucket, True


def upload_package(s3: Any, bucket: str, built: packaging.LambdaPackage) -> bool:
    """Put the zip under its content-addressed key unless that key exists. True if uploaded."""
    try:
        s3.head_object(Bucket=bucket, Key=built.key)
        return False
    except ClientError as exc:
        if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise DeployError(f"s3://{bucket}/{built.key}: {_message(exc)}") from None
    try:
        s3.put_object(Bucket=bucket, Key=built.key, Body=built.data, ContentType="application/zip", Metadata={"sha256": built.sha256})
    except ClientError as exc:
        raise DeployError(f"upload s3://{bucket}/{built.key}: {_message(exc)}") from None
    return True


def _template_source(s3: Any, bucket: str, template: Mapping[str, Any]) -> dict[str, str]:
    body = json.dumps(template, separators=(",", ":"))
    if len(body.encode()) <= TEMPLATE_BODY_LIMIT:
        return {"TemplateBody": body}
    import hashlib

    key = f"{packaging.KEY_PREFIX}/template-{hashlib.sha256(body.encode()).hexdigest()[:16]}.json"
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json")
    except ClientError as exc:
        raise DeployError(f"upload s3://{bucket}/{key}: {_message(exc)}") from None
    region = _region(s3)
    return {"TemplateURL": f"https://{bucket}.s3.{region}.amazonaws.com/{key}"}
