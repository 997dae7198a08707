"""Check a notification topic ElastiCache is to publish to, before a stack names it.

ElastiCache's documentation sets three conditions on the topic (ElastiCache User Guide,
"Event Notifications and Amazon SNS" and "Managing ElastiCache Amazon SNS notifications"):

- "The Amazon SNS topic you are publishing to cannot be encrypted." An encrypted topic can
  be attached, but ElastiCache then shows it inactive and stops publishing.
- "The AWS account that owns the Amazon SNS topic must be the same account that owns the
  cluster", and "The Amazon SNS topic has to be in the same Region as the ElastiCache
  cluster."
- "the topic's access policy must use the aws:SourceOwner condition key, not
  aws:SourceAccount", with the statement that page shows (``elasticache_publish_statement``):
  otherwise ElastiCache "automatically sets the topic status to inactive".

``check_topic`` reads the topic with GetTopicAttributes and raises ``ConfigError`` (field
``--notification-topic-arn``) saying what is wrong and what to change; it changes nothing.
A failover notification that never arrives is silent, so this is refused up front.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from ..errors import ConfigError, DeployError
from .template import elasticache_publish_statement

__all__ = ["FLAG", "check_topic", "topic_problems", "allows_elasticache_publish"]

FLAG = "--notification-topic-arn"


def check_topic(sns: Any, topic_arn: str, account_id: str, region: str) -> None:
    """Raise ``ConfigError`` unless ElastiCache in ``account_id``/``region`` can publish to
    ``topic_arn``; ``DeployError`` when SNS cannot be asked."""
    parts = topic_arn.split(":")
    if len(parts) != 6 or parts[2] != "sns":
        raise ConfigError(FLAG, f"{topic_arn!r} is not an SNS topic ARN", "arn:aws:sns:<region>:<account>:<topic>")
    topic_region, topic_account = parts[3], parts[4]
    if topic_account != account_id:
        raise ConfigError(
            FLAG,
            f"the topic belongs to account {topic_account}, the replication group to {account_id}; "
            "ElastiCache publishes only to a topic of the cluster's own account",
            f"a topic of account {account_id}",
        )
    if topic_region != region:
        raise ConfigError(
            FLAG,
            f"the topic is in {topic_region}, the replication group in {region}; "
            "ElastiCache publishes only to a topic in the cluster's Region",
            f"a topic in {region}",
        )
    try:
        attributes = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") in ("NotFound", "NotFoundException"):
            raise ConfigError(FLAG, f"no topic {topic_arn}", "an existing topic, or leave the flag out and the stack creates one") from None
        raise DeployError(f"GetTopicAttributes {topic_arn}: {error.get('Code', '?')}: {error.get('Message', '')}") from None
    problems = topic_problems(attributes, topic_arn, account_id)
    if problems:
        raise ConfigError(FLAG, f"ElastiCache cannot publish to {topic_arn}: " + "; ".join(problems))


def topic_problems(attributes: Mapping[str, str], topic_arn: str, account_id: str) -> list[str]:
    """What stops ElastiCache from publishing to a topic with these attributes, each with
    the fix; empty when nothing does."""
    problems: list[str] = []
    key = (attributes.get("KmsMasterKeyId") or "").strip()
    if key:
        problems.append(
            f"it is encrypted (KmsMasterKeyId {key}) and ElastiCache cannot publish to an encrypted topic; "
            f"turn its encryption off (aws sns set-topic-attributes --topic-arn {topic_arn} "
            "--attribute-name KmsMasterKeyId --attribute-value '') or leave --notification-topic-arn out "
            "so the stack creates an unencrypted topic"
        )
    try:
        policy = json.loads(attributes.get("Policy") or "{}")
    except json.JSONDecodeError:
        policy = {}
    if not allows_elasticache_publish(policy, topic_arn, account_id):
        statement = json.dumps(elasticache_publish_statement(topic_arn, account_id), separators=(",", ":"))
        problems.append(
            "its access policy has no statement that lets ElastiCache publish "
            "(a policy conditioned on aws:SourceAccount, the default of new topics, makes ElastiCache set it inactive); "
            f"add this statement to the topic's policy: {statement}"
        )
    return problems


def allows_elasticache_publish(policy: Mapping[str, Any], topic_arn: str, account_id: str) -> bool:
    """True when an Allow statement grants SNS:Publish on the topic to any principal,
    either unconditionally or on ``aws:SourceOwner`` equal to this account: the shapes that
    let ElastiCache publish. A grant to a service principal or on aws:SourceAccount does
    not (ElastiCache's documentation names neither)."""
    statements = policy.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    return any(_lets_elasticache_publish(s, topic_arn, account_id) for s in statements if isinstance(s, Mapping))


def _lets_elasticache_publish(statement: Mapping[str, Any], topic_arn: str, account_id: str) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    actions = {a.lower() for a in _as_list(statement.get("Action"))}
    if not actions & {"sns:publish", "sns:*", "*"}:
        return False
    if not any(r in ("*", topic_arn) for r in _as_list(statement.get("Resource", "*"))):
        return False
    principal = statement.get("Principal")
    if principal != "*" and not (isinstance(principal, Mapping) and "*" in _as_list(principal.get("AWS"))):
        return False
    condition = statement.get("Condition")
    if not condition:
        return True
    if not isinstance(condition, Mapping) or set(condition) != {"StringEquals"}:
        return False
    keys = condition["StringEquals"]
    if not isinstance(keys, Mapping) or len(keys) != 1:
        return False
    (name, value), = keys.items()
    return name.lower() == "aws:sourceowner" and account_id in _as_list(value)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []
