"""cloudformation resource types: what moto 5.2.1 gets wrong about the resources in
``cachebridge deploy``'s template, and the ones it does not model at all.

1. ``AWS::ElasticLoadBalancingV2::LoadBalancer`` ignores ``Type`` (every load balancer
   is an ALB, so a TCP listener fails), ``IpAddressType``, ``SubnetMappings`` and
   ``LoadBalancerAttributes``, and has no ``LoadBalancerFullName``.
2. ``AWS::ElasticLoadBalancingV2::TargetGroup`` ignores ``Tags``, ``TargetGroupAttributes``
   (deregistration delay, connection termination) and ``HealthCheckEnabled``, has no
   ``Fn::GetAtt`` at all (``TargetGroupFullName``), no update and no delete. Listeners,
   ``AWS::EC2::SecurityGroupIngress`` rules and ``AWS::Lambda::Permission`` have no
   delete either (and ingress rules no update), so a deleted stack leaves them behind (an
   ingress rule on the cache's security group, from a security group that no longer
   exists).
3. ``AWS::EC2::SecurityGroup`` ignores ``SecurityGroupEgress`` and rule descriptions, and
   is deleted while other groups' rules or a load balancer still name it (AWS says
   DependencyViolation, and CloudFormation deletes the dependents first).
4. ``AWS::SNS::Subscription`` and ``AWS::CloudWatch::Alarm`` are not modelled: moto
   skips them with a warning and the stack "succeeds" without them.
5. ``AWS::Events::Rule`` with a ``Name`` that another rule already has overwrites that
   rule; on AWS the stack fails ("already exists"), which is what keeps two stacks from
   sharing a schedule rule.

The patches follow AWS's documented behaviour for these resource types, not cachebridge's
template.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from moto.elbv2.models import FakeTargetGroup

__all__ = ["install", "installed"]

_MARK = "_cachebridge_cfn_resources_ext"


def install() -> None:
    from moto.cloudformation import parsing

    if getattr(parsing, _MARK, False):
        return
    _patch_elbv2_resources()
    _patch_ec2_resources()
    _patch_lambda_permission()
    _patch_events_rule()
    _define_missing_resources()
    # moto caches the resource types it knows; the ones defined above must be seen.
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    setattr(parsing, _MARK, True)


def installed() -> bool:
    from moto.cloudformation import parsing

    return bool(getattr(parsing, _MARK, False))


# -- elbv2: load balancer type and attributes, target group attributes, deletes -------------


# The ARN and full-name segment of each load balancer type (application: "app").
_LB_KIND = {"network": "net", "gateway": "gwy"}


def _text(value: Any) -> str:
    """A template value as the API takes it: booleans as ``true``/``false``."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _attributes(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {a["Key"]: _text(a["Value"]) for a in items or []}


def _patch_elbv2_resources() -> None:
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
    from moto.elbv2.exceptions import ListenerNotFoundError, TargetGroupNotFoundError
    from moto.elbv2.models import ELBv2Backend, FakeListener, FakeLoadBalancer, elbv2_backends

    original_create_load_balancer = ELBv2Backend.create_load_balancer

    def create_load_balancer(self: Any, *args: Any, **kwargs: Any) -> Any:
        # moto writes ``loadbalancer/app/`` into every ARN; AWS says ``net/`` for an NLB.
        balancer = original_create_load_balancer(self, *args, **kwargs)
        prefix = _LB_KIND.get(balancer.type)
        if prefix and "/app/" in balancer.arn:
            old_arn, balancer.arn = balancer.arn, balancer.arn.replace("loadbalancer/app/", f"loadbalancer/{prefix}/", 1)
            self.load_balancers = type(self.load_balancers)((balancer.arn if k == old_arn else k, v) for k, v in self.load_balancers.items())
            tags = self.tagging_service.list_tags_for_resource(old_arn).get("Tags", [])
            self.tagging_service.delete_all_tags_for_resource(old_arn)
            if tags:
                self.tagging_service.tag_resource(balancer.arn, tags)
        return balancer

    ELBv2Backend.create_load_balancer = create_load_balancer  # type: ignore[method-assign]

    def load_balancer_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        properties = cloudformation_json["Properties"]
        backend = elbv2_backends[account_id][region_name]
        extra: dict[str, Any] = {}
        if properties.get("Tags"):
            extra["tags"] = properties["Tags"]
        balancer = backend.create_load_balancer(
            name=resource_name,
            security_groups=properties.get("SecurityGroups") or [],
            subnet_ids=properties.get("Subnets") or [],
            subnet_mappings=properties.get("SubnetMappings"),
            scheme=properties.get("Scheme") or "internet-facing",
            loadbalancer_type=properties.get("Type") or "application",
            ip_address_type=properties.get("IpAddressType") or "ipv4",
            **extra,
        )
        attributes = _attributes(properties.get("LoadBalancerAttributes"))
        if attributes:
            backend.modify_load_balancer_attributes(balancer.arn, attributes)
        return balancer

    original_lb_attribute = FakeLoadBalancer.get_cfn_attribute

    def load_balancer_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name == "LoadBalancerFullName":
            prefix = _LB_KIND.get(self.type, "app")
            return f"{prefix}/{self.name}/{self.arn.rsplit('/', 1)[-1]}"
        if attribute_name == "CanonicalHostedZoneID":
            return self.canonical_hosted_zone_id
        if attribute_name == "SecurityGroups":
            return list(self.security_groups or [])
        if attribute_name == "LoadBalancerArn":
            return self.arn
        return original_lb_attribute(self, attribute_name)

    lb_attributes = ("DNSName", "LoadBalancerName", "CanonicalHostedZoneID", "LoadBalancerFullName", "SecurityGroups", "LoadBalancerArn")
    FakeLoadBalancer.create_from_cloudformation_json = classmethod(load_balancer_from_cfn)  # type: ignore[method-assign, assignment]
    FakeLoadBalancer.get_cfn_attribute = load_balancer_attribute  # type: ignore[method-assign]
    FakeLoadBalancer.has_cfn_attr = classmethod(lambda cls, attr: attr in lb_attributes)  # type: ignore[method-assign, assignment]

    original_tg_from_cfn = FakeTargetGroup.create_from_cloudformation_json

    def apply_target_group_properties(group: Any, properties: dict[str, Any], backend: Any) -> None:
        if "HealthCheckEnabled" in properties:
            enabled = properties["HealthCheckEnabled"]
            backend.modify_target_group(group.arn, health_check_enabled=str(enabled).lower() == "true")
        attributes = _attributes(properties.get("TargetGroupAttributes"))
        if attributes:
            backend.modify_target_group_attributes(group.arn, attributes)
        if properties.get("Tags"):  # moto drops a target group's Tags
            backend.add_tags([group.arn], [{"Key": t["Key"], "Value": str(t["Value"])} for t in properties["Tags"]])

    def target_group_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        group = original_tg_from_cfn(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        apply_target_group_properties(group, cloudformation_json["Properties"], elbv2_backends[account_id][region_name])
        return group

    def target_group_update(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str) -> Any:
        properties = cloudformation_json["Properties"]
        backend = elbv2_backends[account_id][region_name]
        replaced = [
            name
            for name, current in (("Protocol", original_resource.protocol), ("Port", original_resource.port), ("VpcId", original_resource.vpc_id), ("TargetType", original_resource.target_type))
            if name in properties and str(properties[name]) != str(current)
        ]
        if replaced:
            raise NotImplementedError(f"moto cannot replace a target group (changed: {', '.join(replaced)})")
        backend.modify_target_group(
            original_resource.arn,
            health_check_proto=properties.get("HealthCheckProtocol"),
            health_check_port=properties.get("HealthCheckPort"),
            health_check_path=properties.get("HealthCheckPath"),
            health_check_interval=properties.get("HealthCheckIntervalSeconds"),
            health_check_timeout=properties.get("HealthCheckTimeoutSeconds"),
            healthy_threshold_count=properties.get("HealthyThresholdCount"),
            unhealthy_threshold_count=properties.get("UnhealthyThresholdCount"),
        )
        apply_target_group_properties(original_resource, properties, backend)
        return original_resource

    def target_group_attribute(self: Any, attribute_name: str) -> Any:
        values = {
            "TargetGroupArn": self.arn,
            "TargetGroupName": self.name,
            "TargetGroupFullName": f"targetgroup/{self.name}/{self.arn.rsplit('/', 1)[-1]}",
            "LoadBalancerArns": list(self.load_balancer_arns),
        }
        if attribute_name in values:
            return values[attribute_name]
        raise UnformattedGetAttTemplateException()

    def target_group_delete(self: Any, account_id: str, region_name: str) -> None:
        with contextlib.suppress(TargetGroupNotFoundError):
            elbv2_backends[account_id][region_name].delete_target_group(self.arn)

    def listener_delete(self: Any, account_id: str, region_name: str) -> None:
        with contextlib.suppress(ListenerNotFoundError):  # gone with its load balancer
            elbv2_backends[account_id][region_name].delete_listener(self.arn)

    tg_attributes = ("TargetGroupArn", "TargetGroupName", "TargetGroupFullName", "LoadBalancerArns")
    FakeTargetGroup.create_from_cloudformation_json = classmethod(target_group_from_cfn)  # type: ignore[method-assign, assignment]
    FakeTargetGroup.update_from_cloudformation_json = classmethod(target_group_update)  # type: ignore[method-assign, assignment]
    FakeTargetGroup.get_cfn_attribute = target_group_attribute  # type: ignore[attr-defined]
    FakeTargetGroup.has_cfn_attr = classmethod(lambda cls, attr: attr in tg_attributes)  # type: ignore[method-assign, assignment]
    FakeTargetGroup.delete = target_group_delete  # type: ignore[attr-defined]
    FakeListener.delete = listener_delete  # type: ignore[attr-defined]


# -- ec2: security group rules as written, and ingress rules that can be removed -------------


def _rule_arguments(rule: dict[str, Any], peer_key: str) -> dict[str, Any]:
    described = {"Description": rule["Description"]} if rule.get("Description") else {}
    ranges: list[dict[str, Any]] = []
    if rule.get("CidrIp"):
        ranges.append({"CidrIp": rule["CidrIp"], **described})
    if rule.get("CidrIpv6"):
        ranges.append({"CidrIpv6": rule["CidrIpv6"], **described})
    groups: list[dict[str, Any]] = []
    if rule.get(peer_key):
        groups.append({"GroupId": rule[peer_key], **described})
    if rule.get("SourceSecurityGroupName"):
        groups.append({"GroupName": rule["SourceSecurityGroupName"], **described})
    return {
        "ip_protocol": str(rule["IpProtocol"]),
        "from_port": rule.get("FromPort"),
        "to_port": rule.get("ToPort"),
        "ip_ranges": ranges,
        "source_groups": groups,
    }


def _patch_ec2_resources() -> None:
    from moto.ec2.exceptions import DependencyViolationError, InvalidPermissionNotFoundError
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.security_groups import SecurityGroup, SecurityGroupIngress

    def security_group_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        properties = cloudformation_json["Properties"]
        backend = ec2_backends[account_id][region_name]
        vpc_id = properties.get("VpcId")
        group = backend.create_security_group(
            name=resource_name,
            description=properties.get("GroupDescription"),
            vpc_id=vpc_id,
            tags={t["Key"]: t["Value"] for t in properties.get("Tags") or []},
        )
        for rule in properties.get("SecurityGroupIngress") or []:
            backend.authorize_security_group_ingress(group.id, vpc_id=vpc_id, **_rule_arguments(rule, "SourceSecurityGroupId"))
        egress = properties.get("SecurityGroupEgress")
        if egress is not None:
            # Rules given replace the default allow-all egress rule, as on AWS.
            group.egress_rules = type(group.egress_rules)()
            for rule in egress:
                backend.authorize_security_group_egress(group.id, vpc_id=vpc_id, **_rule_arguments(rule, "DestinationSecurityGroupId"))
        return group

    def ingress_update(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str) -> Any:
        # Every property of an ingress rule needs a replacement on AWS.
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    def ingress_delete(self: Any, account_id: str, region_name: str) -> None:
        backend = ec2_backends[account_id][region_name]
        if backend.get_security_group_from_id(self.security_group.id) is None:
            return  # the rule went with its group
        with contextlib.suppress(InvalidPermissionNotFoundError):
            backend.revoke_security_group_ingress(
                self.security_group.id,
                vpc_id=self.security_group.vpc_id,
                **_rule_arguments(self.properties, "SourceSecurityGroupId"),
            )

    def security_group_delete(self: Any, account_id: str, region_name: str) -> None:
        # AWS refuses to delete a group that another group's rule or a load balancer
        # still names (DependencyViolation); CloudFormation then retries it after the
        # resources that depend on it. moto deletes it and strands those rules.
        from moto.elbv2.models import elbv2_backends

        backend = ec2_backends[account_id][region_name]
        referenced_by = sorted(
            group.id
            for groups in backend.groups.values()
            for group in list(groups.values())
            if group.id != self.id
            and any(rule.source_group.get("GroupId") == self.id for rule in [*group.ingress_rules, *group.egress_rules])
        )
        used_by = sorted(
            lb.name for lb in elbv2_backends[account_id][region_name].load_balancers.values() if self.id in (lb.security_groups or [])
        )
        if referenced_by or used_by:
            raise DependencyViolationError(f"resource {self.id} has a dependent object ({', '.join(referenced_by + used_by)})")
        backend.delete_security_group(group_id=self.id)

    original_ingress_from_cfn = SecurityGroupIngress.create_from_cloudformation_json

    def ingress_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        properties = cloudformation_json["Properties"]
        if not properties.get("Description"):
            return original_ingress_from_cfn(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        backend = ec2_backends[account_id][region_name]
        group_id = properties.get("GroupId") or backend.describe_security_groups(groupnames=[properties["GroupName"]])[0].id
        security_group = backend.describe_security_groups(group_ids=[group_id])[0]
        backend.authorize_security_group_ingress(security_group.id, vpc_id=security_group.vpc_id, **_rule_arguments(properties, "SourceSecurityGroupId"))
        return cls(security_group, properties)

    SecurityGroup.create_from_cloudformation_json = classmethod(security_group_from_cfn)  # type: ignore[method-assign, assignment]
    SecurityGroupIngress.create_from_cloudformation_json = classmethod(ingress_from_cfn)  # type: ignore[method-assign, assignment]
    SecurityGroupIngress.update_from_cloudformation_json = classmethod(ingress_update)  # type: ignore[method-assign, assignment]
    SecurityGroupIngress.delete = ingress_delete  # type: ignore[attr-defined]
    SecurityGroup.delete = security_group_delete  # type: ignore[method-assign]


# -- lambda: permissions that can be removed -------------------------------------------------


def _patch_lambda_permission() -> None:
    from moto.awslambda.exceptions import UnknownFunctionException
    from moto.awslambda.models import Permission, lambda_backends

    def permission_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        properties = dict(cloudformation_json["Properties"])
        properties.setdefault("StatementId", resource_name)
        function = lambda_backends[account_id][region_name].get_function(properties["FunctionName"])
        function.policy.add_statement(raw=json.dumps(properties))
        permission = Permission(region=region_name)
        permission.function_name = function.function_name  # type: ignore[attr-defined]
        permission.statement_id = properties["StatementId"]  # type: ignore[attr-defined]
        return permission

    def permission_delete(self: Any, account_id: str, region_name: str) -> None:
        try:
            function = lambda_backends[account_id][region_name].get_function(self.function_name)
        except UnknownFunctionException:
            return
        function.policy.del_statement(self.statement_id)

    Permission.create_from_cloudformation_json = classmethod(permission_from_cfn)  # type: ignore[method-assign, assignment]
    Permission.delete = permission_delete  # type: ignore[attr-defined]
    Permission.physical_resource_id = property(lambda self: getattr(self, "statement_id", ""))  # type: ignore[attr-defined]


# -- events: a named rule is created once ---------------------------------------------------


def _patch_events_rule() -> None:
    from moto.events.exceptions import ResourceAlreadyExistsException
    from moto.events.models import Rule, events_backends

    original_rule_from_cfn = Rule.create_from_cloudformation_json

    def rule_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        bus_name = cloudformation_json["Properties"].get("EventBusName") or "default"
        bus = events_backends[account_id][region_name]._get_event_bus(bus_name)
        if resource_name in bus.rules:
            raise ResourceAlreadyExistsException(f"{resource_name} already exists in event bus {bus_name}")
        return original_rule_from_cfn(resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Rule.create_from_cloudformation_json = classmethod(rule_from_cfn)  # type: ignore[method-assign, assignment]


# -- resource types moto does not model: SNS subscriptions, CloudWatch alarms ---------------


class _ReplacedResource:
    """What the resource types defined below share: type names from class attributes,
    ``Arn`` as the only ``Fn::GetAtt``, and an update that creates the new resource after
    deleting the old one when ``replaced_by`` says the update replaces it.

    A mixin rather than a CloudFormationModel subclass: moto finds resource types through
    ``CloudFormationModel.__subclasses__()``, which lists direct subclasses only."""

    CFN_TYPE = ""
    CFN_NAME_TYPE = ""  # the property that names the resource; "" for none
    arn: str

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.CFN_TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.CFN_NAME_TYPE

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name == "Arn":
            return self.arn
        raise UnformattedGetAttTemplateException()

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        raise NotImplementedError

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> Any:
        if original_resource.replaced_by(new_resource_name):
            original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    def replaced_by(self, new_resource_name: str) -> bool:
        return True


def _define_missing_resources() -> None:
    # Defined here, not at import: defining a CloudFormationModel subclass registers it
    # with moto, and only install() should.
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core.common_models import CloudFormationModel
    from moto.sns.models import sns_backends

    class SnsSubscription(_ReplacedResource, CloudFormationModel):
        """``AWS::SNS::Subscription`` through moto's SNS backend."""

        CFN_TYPE = "AWS::SNS::Subscription"

        def __init__(self, arn: str, topic_arn: str, protocol: str, endpoint: str) -> None:
            self.arn = arn
            self.topic_arn = topic_arn
            self.protocol = protocol
            self.endpoint = endpoint

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> SnsSubscription:
            properties = cloudformation_json["Properties"]
            backend = sns_backends[account_id][region_name]
            subscription = backend.subscribe(properties["TopicArn"], properties["Endpoint"], properties["Protocol"])
            for key in ("FilterPolicy", "RawMessageDelivery", "RedrivePolicy"):
                if key in properties:
                    value = properties[key]
                    value = json.dumps(value) if isinstance(value, dict) else _text(value)
                    backend.set_subscription_attributes(subscription.arn, key, value)
            return cls(subscription.arn, properties["TopicArn"], properties["Protocol"], properties["Endpoint"])

        def delete(self, account_id: str, region_name: str) -> None:
            sns_backends[account_id][region_name].unsubscribe(self.arn)

    class MetricAlarm(_ReplacedResource, CloudFormationModel):
        """``AWS::CloudWatch::Alarm`` (metric alarms) through moto's CloudWatch backend."""

        CFN_TYPE = "AWS::CloudWatch::Alarm"
        CFN_NAME_TYPE = "AlarmName"

        def __init__(self, name: str, arn: str) -> None:
            self.name = name
            self.arn = arn

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> MetricAlarm:
            p = cloudformation_json["Properties"]
            if "Metrics" in p:
                raise NotImplementedError("metric math alarms (Metrics) are not modelled")
            alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
                name=resource_name,
                namespace=p.get("Namespace"),
                metric_name=p.get("MetricName"),
                comparison_operator=p["ComparisonOperator"],
                evaluation_periods=int(p["EvaluationPeriods"]),
                period=int(p["Period"]) if "Period" in p else None,
                threshold=float(p["Threshold"]) if "Threshold" in p else None,
                statistic=p.get("Statistic"),
                extended_statistic=p.get("ExtendedStatistic"),
                description=p.get("AlarmDescription"),
                dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in p.get("Dimensions") or []],
                alarm_actions=list(p.get("AlarmActions") or []),
                ok_actions=list(p.get("OKActions") or []),
                insufficient_data_actions=list(p.get("InsufficientDataActions") or []),
                datapoints_to_alarm=int(p["DatapointsToAlarm"]) if "DatapointsToAlarm" in p else None,
                unit=p.get("Unit"),
                actions_enabled=str(p.get("ActionsEnabled", True)).lower() == "true",
                treat_missing_data=p.get("TreatMissingData"),
                evaluate_low_sample_count_percentile=p.get("EvaluateLowSampleCountPercentile"),
                threshold_metric_id=p.get("ThresholdMetricId"),
            )
            return cls(resource_name, alarm.alarm_arn)

        def replaced_by(self, new_resource_name: str) -> bool:
            # PutMetricAlarm under the same name rewrites the alarm in place.
            return new_resource_name != self.name

        def delete(self, account_id: str, region_name: str) -> None:
            cloudwatch_backends[account_id][region_name].delete_alarms([self.name])

    class TopicPolicy(_ReplacedResource, CloudFormationModel):
        """``AWS::SNS::TopicPolicy``: the ``Policy`` attribute of each topic."""

        CFN_TYPE = "AWS::SNS::TopicPolicy"

        def __init__(self, arn: str, topics: list[str]) -> None:
            self.arn = arn
            self.topics = topics

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> TopicPolicy:
            properties = cloudformation_json["Properties"]
            backend = sns_backends[account_id][region_name]
            topics = list(properties["Topics"])
            document = properties["PolicyDocument"]
            for topic in topics:
                # moto stores topic attributes under their snake_case names ("policy").
                backend.set_topic_attribute(topic, "policy", document if isinstance(document, str) else json.dumps(document))
            return cls(f"{resource_name}-{abs(hash(tuple(topics))) % 10**8}", topics)

        def delete(self, account_id: str, region_name: str) -> None:
            # The topics usually go with the same stack; nothing to restore on a deleted one.
            pass

    # CloudFormationModel.__subclasses__() holds weak references: keep the classes alive.
    global _MISSING_RESOURCE_TYPES
    _MISSING_RESOURCE_TYPES = (SnsSubscription, MetricAlarm, TopicPolicy)


_MISSING_RESOURCE_TYPES: tuple[type, ...] = ()
