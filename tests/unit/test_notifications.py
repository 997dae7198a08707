"""deploy --notification-topic-arn: a topic ElastiCache cannot publish to is refused, with
what to change, before anything is created."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cachebridge.deploy.notifications import allows_elasticache_publish, check_topic
from cachebridge.deploy.template import elasticache_publish_statement
from cachebridge.errors import ConfigError
from cachebridge.sandbox import moto_ext

ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:elasticache-orders"


@pytest.fixture
def sns() -> Iterator[Any]:
    moto_ext.install()
    with mock_aws():
        yield boto3.client("sns", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def documented_policy(topic_arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [elasticache_publish_statement(topic_arn, ACCOUNT)]})


def test_the_documented_statement_passes(sns):
    arn = sns.create_topic(Name="elasticache-orders")["TopicArn"]
    sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=documented_policy(arn))
    check_topic(sns, arn, ACCOUNT, REGION)


def test_a_new_topic_with_the_default_policy_is_refused_with_the_statement_to_add(sns):
    # New topics default to aws:SourceAccount, which makes ElastiCache set them inactive.
    arn = sns.create_topic(Name="elasticache-orders")["TopicArn"]
    assert "AWS:SourceAccount" in sns.get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"]
    with pytest.raises(ConfigError) as caught:
        check_topic(sns, arn, ACCOUNT, REGION)
    assert caught.value.field == "--notification-topic-arn"
    message = str(caught.value)
    assert "no statement that lets ElastiCache publish" in message
    statement = json.loads(message.split("add this statement to the topic's policy: ", 1)[1])
    assert statement == {
        "Sid": "AllowElastiCachePublish",
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": "SNS:Publish",
        "Resource": arn,
        "Condition": {"StringEquals": {"AWS:SourceOwner": ACCOUNT}},
    }


def test_an_encrypted_topic_is_refused(sns):
    arn = sns.create_topic(Name="elasticache-orders", Attributes={"KmsMasterKeyId": "alias/aws/sns"})["TopicArn"]
    sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=documented_policy(arn))
    with pytest.raises(ConfigError, match="it is encrypted \\(KmsMasterKeyId alias/aws/sns\\) and ElastiCache cannot publish to an encrypted topic") as caught:
        check_topic(sns, arn, ACCOUNT, REGION)
    assert "no statement" not in str(caught.value)  # only what is wrong


def test_encrypted_and_wrong_policy_both_said(sns):
    arn = sns.create_topic(Name="elasticache-orders", Attributes={"KmsMasterKeyId": "alias/aws/sns"})["TopicArn"]
    with pytest.raises(ConfigError) as caught:
        check_topic(sns, arn, ACCOUNT, REGION)
    assert "encrypted" in str(caught.value) and "add this statement" in str(caught.value)


def test_a_missing_topic_is_refused(sns):
    with pytest.raises(ConfigError, match="no topic"):
        check_topic(sns, TOPIC, ACCOUNT, REGION)


@pytest.mark.parametrize(
    ("arn", "says"),
    [
        (f"arn:aws:sns:{REGION}:210987654321:elasticache-orders", "belongs to account 210987654321"),
        (f"arn:aws:sns:eu-west-1:{ACCOUNT}:elasticache-orders", "is in eu-west-1"),
        ("arn:aws:sqs:us-east-1:123456789012:q", "not an SNS topic ARN"),
    ],
)
def test_another_account_or_region_is_refused_without_asking_sns(arn, says):
    class NoCalls:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"SNS was called: {name}")

    with pytest.raises(ConfigError, match=says):
        check_topic(NoCalls(), arn, ACCOUNT, REGION)


def statement(**changes: Any) -> dict[str, Any]:
    base = elasticache_publish_statement(TOPIC, ACCOUNT)
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("policy_statement", "allowed"),
    [
        (statement(), True),
        (statement(Principal="*"), True),
        (statement(Action=["SNS:Subscribe", "sns:Publish"]), True),
        (statement(Resource="*"), True),
        (statement(Condition=None), True),
        (statement(Sid=None, Condition={"StringEquals": {"aws:SourceOwner": [ACCOUNT]}}), True),
        (statement(Principal={"Service": "elasticache.amazonaws.com"}), False),
        (statement(Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}}), False),
        (statement(Condition={"StringEquals": {"AWS:SourceOwner": "210987654321"}}), False),
        (statement(Effect="Deny"), False),
        (statement(Action="SNS:Subscribe"), False),
        (statement(Resource="arn:aws:sns:us-east-1:123456789012:other"), False),
    ],
)
def test_which_statements_let_elasticache_publish(policy_statement, allowed):
    assert allows_elasticache_publish({"Statement": [policy_statement]}, TOPIC, ACCOUNT) is allowed
