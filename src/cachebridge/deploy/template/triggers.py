"""What runs the controller and what watches it: the safety-net schedule, the ElastiCache
notification topic and its subscription, and the alarms."""

from __future__ import annotations

from typing import Any

from .bindings import binding_name_sub
from .cfn import _get_att, _if, _ref, _skip, _sub

__all__ = ["DRIFT_NAMESPACE", "SCHEDULE_RULE_SUFFIX", "SCHEDULE_RULE_NAME_MAX", "elasticache_publish_statement"]


DRIFT_NAMESPACE = "CacheBridge"  # metrics.NAMESPACE; the EMF lines carry FunctionName and Binding
SCHEDULE_RULE_SUFFIX = "-sync"
SCHEDULE_RULE_NAME_MAX = 64


def _schedule_rule_name() -> dict[str, Any]:
    return _if("HasScheduleRuleName", _ref("ScheduleRuleName"), _sub("${AWS::StackName}" + SCHEDULE_RULE_SUFFIX))


def _trigger_resources() -> dict[str, Any]:
    topic_arn = _if("CreateTopic", _ref("NotificationTopic"), _ref("NotificationTopicArn"))
    return {
        # The rule's ARN is built from its name, so the permission can exist before the
        # rule starts invoking the function.
        "SchedulePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": _get_att("ControllerFunction", "Arn"),
                "Principal": "events.amazonaws.com",
                "SourceArn": _sub(
                    "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${RuleName}",
                    {"RuleName": _schedule_rule_name()},
                ),
            },
        },
        "Schedule": {
            "Type": "AWS::Events::Rule",
            "DependsOn": ["SchedulePermission"],
            "Properties": {
                "Name": _schedule_rule_name(),
                "Description": _sub("cachebridge safety-net sync of stack ${AWS::StackName}"),
                "ScheduleExpression": _ref("ScheduleExpression"),
                "State": "ENABLED",
                "Targets": [{"Arn": _get_att("ControllerFunction", "Arn"), "Id": "controller"}],
            },
        },
        "NotificationTopic": {
            "Type": "AWS::SNS::Topic",
            "Condition": "CreateTopic",
            "Metadata": _skip(
                ("CKV_AWS_26", "ElastiCache cannot publish to an encrypted topic (User Guide: the topic cannot be encrypted)"),
            ),
            "Properties": {"DisplayName": _sub("cachebridge ${ReplicationGroupId}")},
        },
        # ElastiCache publishes only to topics whose policy conditions on AWS:SourceOwner:
        # "the topic's access policy must use the aws:SourceOwner condition key, not
        # aws:SourceAccount" or ElastiCache "automatically sets the topic status to
        # inactive" (ElastiCache User Guide, "Managing ElastiCache Amazon SNS
        # notifications"). The statement is the one that page shows, word for word.
        "NotificationTopicPolicy": {
            "Type": "AWS::SNS::TopicPolicy",
            "Condition": "CreateTopic",
            "Properties": {
                "Topics": [_ref("NotificationTopic")],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        elasticache_publish_statement(_ref("NotificationTopic"), _ref("AWS::AccountId")),
                        {
                            "Sid": "AccountManagesTopic",
                            "Effect": "Allow",
                            "Principal": {"AWS": _sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
                            "Action": [
                                "sns:GetTopicAttributes",
                                "sns:SetTopicAttributes",
                                "sns:Subscribe",
                                "sns:ListSubscriptionsByTopic",
                                "sns:Publish",
                                "sns:DeleteTopic",
                            ],
                            "Resource": _ref("NotificationTopic"),
                        },
                    ],
                },
            },
        },
        "TopicPermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": _get_att("ControllerFunction", "Arn"),
                "Principal": "sns.amazonaws.com",
                "SourceArn": topic_arn,
            },
        },
        "TopicSubscription": {
            "Type": "AWS::SNS::Subscription",
            "DependsOn": ["TopicPermission"],
            "Properties": {
                "Protocol": "lambda",
                "Endpoint": _get_att("ControllerFunction", "Arn"),
                "TopicArn": topic_arn,
            },
        },
    }


def elasticache_publish_statement(topic_arn: Any, account_id: Any) -> dict[str, Any]:
    """ElastiCache's documented statement letting it publish to a topic (ElastiCache User
    Guide, "Managing ElastiCache Amazon SNS notifications"): any principal, SNS:Publish,
    on condition that the source owner is this account."""
    return {
        "Sid": "AllowElastiCachePublish",
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": "SNS:Publish",
        "Resource": topic_arn,
        "Condition": {"StringEquals": {"AWS:SourceOwner": account_id}},
    }


def _alarm_resources() -> dict[str, Any]:
    return {
        "ControllerErrorsAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": _sub("cachebridge ${AWS::StackName}: the controller failed (a binding in error, or a crash)"),
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": _ref("ControllerFunction")}],
                "Statistic": "Sum",
                "Period": 60,
                "EvaluationPeriods": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
            },
        },
        "NoHealthyTargetAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Condition": "HasTargetGroup",
            "Properties": {
                "AlarmDescription": _sub("cachebridge ${AWS::StackName}: no healthy target behind the NLB"),
                "Namespace": "AWS/NetworkELB",
                "MetricName": "HealthyHostCount",
                "Dimensions": [
                    {"Name": "TargetGroup", "Value": _get_att("TargetGroup", "TargetGroupFullName")},
                    {"Name": "LoadBalancer", "Value": _get_att("LoadBalancer", "LoadBalancerFullName")},
                ],
                "Statistic": "Minimum",
                "Period": 60,
                "EvaluationPeriods": 2,
                "DatapointsToAlarm": 2,
                "Threshold": 1,
                "ComparisonOperator": "LessThanThreshold",
                "TreatMissingData": "breaching",
            },
        },
        "DriftAlarm": _binding_alarm(
            "Drift", "every sync in 5 minutes found the target group differing from the primary", periods=1,
        ),
        # A binding a pass could not reach (its deadline, or ELB's Describe throttle at
        # scale) is reported skipped and read first by the next run; a scheduled run that
        # skipped some fails no invocation, so this is where a binding left unchecked for
        # long shows.
        "UncheckedAlarm": _binding_alarm(
            "Skipped", "every sync in 15 minutes left the target group unchecked (skipped: out of time or ELB read budget)",
            periods=3,
        ),
    }


def _binding_alarm(metric: str, what: str, *, periods: int) -> dict[str, Any]:
    """An alarm on one of the controller's per-binding metrics for the stack's binding:
    every 5-minute period of ``periods`` had it at 1 or more in every run (Minimum)."""
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": _sub("cachebridge ${AWS::StackName}: " + what),
            "Namespace": DRIFT_NAMESPACE,
            "MetricName": metric,
            "Dimensions": [
                {"Name": "FunctionName", "Value": _ref("ControllerFunction")},
                # Cluster layout: the node slots binding (the configuration group's
                # membership follows the same nodes).
                {"Name": "Binding", "Value": _if("IsCluster", _sub("${ReplicationGroupId}-nodes"), _sub(binding_name_sub()))},
            ],
            "Statistic": "Minimum",
            "Period": 300,
            "EvaluationPeriods": periods,
            "DatapointsToAlarm": periods,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        },
    }
