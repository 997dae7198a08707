"""The artifact bucket (private, encrypted, versioned) and what deploy puts in it: the
Lambda zip under its content-addressed key, and a template too large to send inline."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from ..errors import DeployError
from . import package as packaging
from .clients import _code, _message, _region

__all__ = ["TEMPLATE_BODY_LIMIT", "BUCKET_FORMAT", "artifact_bucket_name", "ensure_artifact_bucket", "upload_package"]


TEMPLATE_BODY_LIMIT = 51_200
BUCKET_FORMAT = "cachebridge-artifacts-{account}-{region}"


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
