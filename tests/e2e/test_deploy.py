"""`cachebridge deploy` / `destroy` end to end against moto server (with cachebridge's
extensions), a loopback DNS server for the node names, and the deployed function's own
environment run in-process (moto cannot invoke a Lambda without Docker)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cachebridge.deploy import stack as deploy_stack
from cachebridge.deploy.template import elasticache_publish_statement
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.targets import Target

from .conftest import aws_client, run_cli, run_cli_with_input

CLIENT_CIDR = "203.0.113.0/24"


@dataclass
class Site:
    """What a user has before deploying: a VPC, subnets, and a replication group whose node
    names resolve (through the loopback DNS server) to addresses in that VPC."""

    vpc: str
    subnets: list[str]
    cache_sg: str
    rg_id: str
    port: int
    primary_name: str
    primary_ip: str
    replica_ip: str
    members: list[str]


def _site(env: dict[str, str], dns: LoopbackDnsServer, octet: int, port: int = 6379) -> Site:
    ec2 = aws_client(env, "ec2")
    elasticache = aws_client(env, "elasticache")
    vpc = ec2.create_vpc(CidrBlock=f"10.{octet}.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{octet}.{i}.0/24", AvailabilityZone=f"us-east-1{zone}")["Subnet"]["SubnetId"]
        for i, zone in ((1, "a"), (2, "b"))
    ]
    cache_sg = ec2.create_security_group(GroupName=f"cache-{uuid.uuid4().hex[:8]}", Description="cache nodes", VpcId=vpc)["GroupId"]
    rg_id = f"orders-{uuid.uuid4().hex[:8]}"
    group = elasticache.create_replication_group(
        ReplicationGroupId=rg_id,
        ReplicationGroupDescription="orders",
        Engine="redis",
        CacheNodeType="cache.t4g.micro",
        ReplicasPerNodeGroup=1,
        SecurityGroupIds=[cache_sg],
        Port=port,
    )["ReplicationGroup"]
    members = group["NodeGroups"][0]["NodeGroupMembers"]
    primary = next(m for m in members if m["CurrentRole"] == "primary")
    replica = next(m for m in members if m["CurrentRole"] == "replica")
    primary_ip, replica_ip = f"10.{octet}.1.10", f"10.{octet}.2.10"
    dns.zone.set_a(primary["ReadEndpoint"]["Address"], primary_ip)
    dns.zone.set_a(replica["ReadEndpoint"]["Address"], replica_ip)
    return Site(vpc, subnets, cache_sg, rg_id, port, primary["ReadEndpoint"]["Address"], primary_ip, replica_ip, [m["CacheClusterId"] for m in members])


def _deploy_args(site: Site, stack_name: str, dns: LoopbackDnsServer, *extra: str, cidr: str = CLIENT_CIDR, layout: str = "retarget") -> list[str]:
    # These tests look at the retarget layout's one target group; test_switch_layout_*
    # deploys the default, switch.
    return [
        "deploy",
        "--stack-name", stack_name,
        "--replication-group", site.rg_id,
        "--vpc", site.vpc,
        "--subnets", ",".join(site.subnets),
        "--allowed-cidr", cidr,
        "--invoke", "local",
        "--nameserver", dns.address,
        "--poll-interval", "0.2",
        "--timeout", "60",
        "--layout", layout,
        *extra,
    ]


def _stack_name(prefix: str = "cb") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _registered(env: dict[str, str], target_group_arn: str) -> set[Target]:
    health = aws_client(env, "elbv2").describe_target_health(TargetGroupArn=target_group_arn)["TargetHealthDescriptions"]
    return {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in health}


def _stack(env: dict[str, str], name: str) -> dict[str, Any] | None:
    try:
        return aws_client(env, "cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        assert "does not exist" in str(exc)
        return None


def _error_code(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


@pytest.fixture
def stacks(aws_env: dict[str, str]) -> Iterator[list[str]]:
    """Names of the stacks a test deploys; whatever is left is deleted afterwards."""
    names: list[str] = []
    yield names
    cfn = aws_client(aws_env, "cloudformation")
    for name in names:
        if _stack(aws_env, name) is not None:
            cfn.delete_stack(StackName=name)


def test_two_stacks_deploy_side_by_side_and_each_syncs_its_own_target_group(aws_env, dns_server, stacks):
    orders = _site(aws_env, dns_server, 10)
    carts = _site(aws_env, dns_server, 11, port=6380)
    deployed = {}
    for site in (orders, carts):
        name = _stack_name()
        stacks.append(name)
        result = run_cli(aws_env, *_deploy_args(site, name, dns_server, "--wire-notifications", "--json"), timeout=120)
        assert result.returncode == 0, result.stderr
        deployed[name] = (site, json.loads(result.stdout))

    elbv2 = aws_client(aws_env, "elbv2")
    lam = aws_client(aws_env, "lambda")
    elasticache = aws_client(aws_env, "elasticache")
    seen_outputs: dict[str, set[str]] = {}
    for name, (site, report) in deployed.items():
        assert report["ok"] is True
        assert report["action"] == "create"
        assert report["status"] == "CREATE_COMPLETE"
        assert _stack(aws_env, name)["StackStatus"] == "CREATE_COMPLETE"
        outputs = report["outputs"]
        for key in ("LoadBalancerDnsName", "ConnectionUrl", "TargetGroupArn", "FunctionName", "NotificationTopicArn", "ScheduleRuleName"):
            seen_outputs.setdefault(key, set()).add(outputs[key])
        assert outputs["ConnectionUrl"] == f"redis://{outputs['LoadBalancerDnsName']}:{site.port}"

        # The stack's own function environment, run in-process, registered the primary.
        sync = report["sync"]
        assert sync["mode"] == "local" and sync["ok"] is True
        assert sync["function_environment"] == ["CACHEBRIDGE_BINDINGS", "CACHEBRIDGE_CONTROLLER_ID", "CACHEBRIDGE_LOCK_TABLE", "CACHEBRIDGE_VPC_CIDRS"]
        assert sync["overrides"] == {"CACHEBRIDGE_NAMESERVERS": dns_server.address}
        binding, reader = sync["report"]["bindings"]
        assert binding["status"] == reader["status"] == "changed"
        assert _registered(aws_env, outputs["ReaderTargetGroupArn"]) == {Target(site.replica_ip, site.port)}
        assert _registered(aws_env, outputs["TargetGroupArn"]) == {Target(site.primary_ip, site.port)}
        environment = lam.get_function_configuration(FunctionName=outputs["FunctionName"])["Environment"]["Variables"]
        configured, _ = json.loads(environment["CACHEBRIDGE_BINDINGS"])["bindings"]
        # The VPC's CIDR blocks as deploy read them: the controller checks addresses
        # inside them without building an EC2 client.
        assert environment["CACHEBRIDGE_VPC_CIDRS"] == f"{site.vpc}={aws_client(aws_env, 'ec2').describe_vpcs(VpcIds=[site.vpc])['Vpcs'][0]['CidrBlock']}"
        assert configured["target_group"] == outputs["TargetGroupArn"]
        assert configured["source"] == f"elasticache://{site.rg_id}?role=primary"
        assert configured["port"] == site.port

        # A network load balancer with a TCP listener, in front of an IP target group that
        # drops the old primary's connections quickly.
        listener_lb = elbv2.describe_listeners(
            LoadBalancerArn=elbv2.describe_target_groups(TargetGroupArns=[outputs["TargetGroupArn"]])["TargetGroups"][0]["LoadBalancerArns"][0]
        )["Listeners"][0]
        balancer = elbv2.describe_load_balancers(LoadBalancerArns=[listener_lb["LoadBalancerArn"]])["LoadBalancers"][0]
        assert balancer["Type"] == "network"
        assert balancer["DNSName"] == outputs["LoadBalancerDnsName"]
        assert (listener_lb["Protocol"], listener_lb["Port"]) == ("TCP", site.port)
        attributes = {
            a["Key"]: a["Value"]
            for a in elbv2.describe_target_group_attributes(TargetGroupArn=outputs["TargetGroupArn"])["Attributes"]
        }
        assert attributes["deregistration_delay.connection_termination.enabled"] == "true"
        assert int(attributes["deregistration_delay.timeout_seconds"]) <= 10

        # Failover notifications reach the stack's topic.
        member = elasticache.describe_cache_clusters(CacheClusterId=site.members[0])["CacheClusters"][0]
        assert member["NotificationConfiguration"]["TopicArn"] == outputs["NotificationTopicArn"]
        assert report["notifications"]["state"] == "wired"

    # Nothing is shared between the two stacks.
    for key, values in seen_outputs.items():
        assert len(values) == 2, key


def test_the_deployed_environment_follows_a_node_replacement(aws_env, dns_server, stacks, monkeypatch):
    site = _site(aws_env, dns_server, 12)
    name = _stack_name()
    stacks.append(name)
    result = run_cli(aws_env, *_deploy_args(site, name, dns_server, "--no-wire-notifications", "--json"), timeout=120)
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)["outputs"]
    assert _registered(aws_env, outputs["TargetGroupArn"]) == {Target(site.primary_ip, site.port)}

    # The primary node is replaced: same name, new address. The function's own environment,
    # run here in this process, moves the target group to it.
    new_ip = "10.12.1.77"
    dns_server.zone.set_a(site.primary_name, new_ip)
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    sync = deploy_stack.run_sync("local", outputs["FunctionName"], clients=deploy_stack.Clients(), nameservers=[dns_server.address])
    assert sync is not None and sync["ok"] is True, sync
    binding = sync["report"]["bindings"][0]
    assert binding["register"] == [f"{new_ip}:{site.port}"]
    assert binding["deregister"] == [f"{site.primary_ip}:{site.port}"]
    assert _registered(aws_env, outputs["TargetGroupArn"]) == {Target(new_ip, site.port)}


def test_deploying_again_without_a_change_does_nothing(aws_env, dns_server, stacks):
    site = _site(aws_env, dns_server, 13)
    name = _stack_name()
    stacks.append(name)
    args = _deploy_args(site, name, dns_server, "--wire-notifications")
    first = run_cli(aws_env, *args, timeout=120)
    assert first.returncode == 0, first.stderr
    cfn = aws_client(aws_env, "cloudformation")
    before = _stack(aws_env, name)
    events_before = cfn.describe_stack_events(StackName=name)["StackEvents"]
    function_before = aws_client(aws_env, "lambda").get_function_configuration(FunctionName=_outputs(before)["FunctionName"])

    again = run_cli(aws_env, *args, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "no changes" in again.stdout
    assert "nothing done" in again.stdout
    as_json = run_cli(aws_env, *args, "--json", timeout=120)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["action"] == "none"
    assert report["sync"] is None
    assert report["artifact"]["uploaded"] is False

    after = _stack(aws_env, name)
    assert after["StackStatus"] == before["StackStatus"] == "CREATE_COMPLETE"
    assert after["Parameters"] == before["Parameters"]
    assert after["Outputs"] == before["Outputs"]
    assert cfn.describe_stack_events(StackName=name)["StackEvents"] == events_before
    assert [s for s in cfn.list_change_sets(StackName=name)["Summaries"] if s["StackName"] == name] == []
    function_after = aws_client(aws_env, "lambda").get_function_configuration(FunctionName=_outputs(after)["FunctionName"])
    assert function_after["CodeSha256"] == function_before["CodeSha256"]
    assert function_after["Environment"] == function_before["Environment"]

    # A real change, by contrast, is applied through an UPDATE change set.
    changed = run_cli(aws_env, *args, "--health-check-interval", "15", "--json", timeout=120)
    assert changed.returncode == 0, changed.stderr
    report = json.loads(changed.stdout)
    assert (report["action"], report["status"]) == ("update", "UPDATE_COMPLETE")
    # The health check interval is a property of both of the retarget layout's target groups.
    assert {e["logical_id"] for e in report["events"] if e["status"] == "UPDATE_COMPLETE"} == {"TargetGroup", "ReaderTargetGroup", name}
    group = aws_client(aws_env, "elbv2").describe_target_groups(TargetGroupArns=[_outputs(after)["TargetGroupArn"]])["TargetGroups"][0]
    assert group["HealthCheckIntervalSeconds"] == 15


def _outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def test_destroy_asks_first_then_removes_everything(aws_env, dns_server, stacks):
    site = _site(aws_env, dns_server, 14)
    name = _stack_name()
    stacks.append(name)
    deployed = run_cli(aws_env, *_deploy_args(site, name, dns_server, "--wire-notifications", "--json"), timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    outputs = json.loads(deployed.stdout)["outputs"]
    cfn = aws_client(aws_env, "cloudformation")
    resources = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in cfn.describe_stack_resources(StackName=name)["StackResources"]}
    function_arn = aws_client(aws_env, "lambda").get_function(FunctionName=outputs["FunctionName"])["Configuration"]["FunctionArn"]

    declined = run_cli_with_input(aws_env, "destroy", "--stack-name", name, stdin_text="n\n")
    assert declined.returncode != 0
    assert _stack(aws_env, name)["StackStatus"] == "CREATE_COMPLETE"

    destroyed = run_cli(aws_env, "destroy", "--stack-name", name, "--yes", "--poll-interval", "0.2", "--timeout", "60")
    assert destroyed.returncode == 0, destroyed.stderr
    assert "deleted" in destroyed.stdout
    assert "left behind" not in destroyed.stdout
    assert _stack(aws_env, name) is None

    elbv2 = aws_client(aws_env, "elbv2")
    ec2 = aws_client(aws_env, "ec2")
    assert _error_code(lambda: elbv2.describe_target_groups(TargetGroupArns=[outputs["TargetGroupArn"]])) == "TargetGroupNotFound"
    assert _error_code(lambda: elbv2.describe_load_balancers(LoadBalancerArns=[resources["LoadBalancer"]])) == "LoadBalancerNotFound"
    assert _error_code(lambda: aws_client(aws_env, "lambda").get_function(FunctionName=outputs["FunctionName"])) == "ResourceNotFoundException"
    assert _error_code(lambda: ec2.describe_security_groups(GroupIds=[resources["LoadBalancerSecurityGroup"]])) == "InvalidGroup.NotFound"
    cache_rules = ec2.describe_security_groups(GroupIds=[site.cache_sg])["SecurityGroups"][0]["IpPermissions"]
    assert not any(pair["GroupId"] == resources["LoadBalancerSecurityGroup"] for rule in cache_rules for pair in rule["UserIdGroupPairs"])
    assert _error_code(lambda: aws_client(aws_env, "iam").get_role(RoleName=resources["ControllerRole"])) == "NoSuchEntity"
    assert _error_code(lambda: aws_client(aws_env, "events").describe_rule(Name=outputs["ScheduleRuleName"])) == "ResourceNotFoundException"
    assert _error_code(lambda: aws_client(aws_env, "sns").get_topic_attributes(TopicArn=outputs["NotificationTopicArn"])) == "NotFound"
    subscriptions = aws_client(aws_env, "sns").list_subscriptions()["Subscriptions"]
    assert not any(s["Endpoint"] == function_arn for s in subscriptions)
    alarms = [resources[k] for k in ("ControllerErrorsAlarm", "NoHealthyTargetAlarm", "DriftAlarm", "UncheckedAlarm")]
    assert aws_client(aws_env, "cloudwatch").describe_alarms(AlarmNames=alarms)["MetricAlarms"] == []
    log_groups = aws_client(aws_env, "logs").describe_log_groups(logGroupNamePrefix=resources["ControllerLogGroup"])["logGroups"]
    assert log_groups == []

    gone = run_cli(aws_env, "destroy", "--stack-name", name, "--yes")
    assert gone.returncode == 0, gone.stderr
    assert "does not exist" in gone.stdout


def test_any_source_is_allowed_only_on_purpose(aws_env, dns_server, stacks):
    site = _site(aws_env, dns_server, 15)
    name = _stack_name()
    stacks.append(name)
    result = run_cli(
        aws_env,
        *_deploy_args(site, name, dns_server, "--allow-any-source", "--no-wire-notifications", "--json", cidr="0.0.0.0/0"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    sg = aws_client(aws_env, "cloudformation").describe_stack_resource(StackName=name, LogicalResourceId="LoadBalancerSecurityGroup")
    group_id = sg["StackResourceDetail"]["PhysicalResourceId"]
    rules = aws_client(aws_env, "ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]
    # One rule per listener port: the primary listener's and the reader listener's.
    assert [r["CidrIp"] for rule in rules for r in rule["IpRanges"]] == ["0.0.0.0/0", "0.0.0.0/0"]


def test_a_failed_stack_shows_the_failing_resource_and_its_reason(aws_env, dns_server, stacks):
    shared_rule = f"cb-shared-{uuid.uuid4().hex[:8]}"
    first_site = _site(aws_env, dns_server, 16)
    second_site = _site(aws_env, dns_server, 17)
    first, second = _stack_name(), _stack_name()
    stacks.extend([first, second])
    ok = run_cli(aws_env, *_deploy_args(first_site, first, dns_server, "--schedule-rule-name", shared_rule, "--no-wire-notifications"), timeout=120)
    assert ok.returncode == 0, ok.stderr
    first_function = _outputs(_stack(aws_env, first))["FunctionName"]

    # A second stack asking for the same schedule rule name must fail, not take the rule over.
    failed = run_cli(aws_env, *_deploy_args(second_site, second, dns_server, "--schedule-rule-name", shared_rule, "--no-wire-notifications"), timeout=120)
    assert failed.returncode == 1, failed.stdout
    assert "Schedule" in failed.stderr
    assert "already exists" in failed.stderr
    assert "ROLLBACK_COMPLETE" in failed.stderr
    assert _stack(aws_env, second)["StackStatus"] == "ROLLBACK_COMPLETE"

    events = aws_client(aws_env, "cloudformation").describe_stack_events(StackName=second)["StackEvents"]
    created = {e["LogicalResourceId"]: e.get("PhysicalResourceId") for e in events if e["ResourceStatus"] == "CREATE_COMPLETE" and e["ResourceType"] != "AWS::CloudFormation::Stack"}
    assert "TargetGroup" in created
    assert _error_code(lambda: aws_client(aws_env, "elbv2").describe_target_groups(TargetGroupArns=[created["TargetGroup"]])) == "TargetGroupNotFound"
    targets = aws_client(aws_env, "events").list_targets_by_rule(Rule=shared_rule)["Targets"]
    assert [t["Arn"].rsplit(":", 1)[-1] for t in targets] == [first_function]

    # A rolled-back stack cannot be updated: deploy says what to do.
    retry = run_cli(aws_env, *_deploy_args(second_site, second, dns_server, "--no-wire-notifications"), timeout=120)
    assert retry.returncode == 1
    assert "destroy" in retry.stderr
    cleared = run_cli(aws_env, "destroy", "--stack-name", second, "--yes", "--poll-interval", "0.2")
    assert cleared.returncode == 0, cleared.stderr
    assert _stack(aws_env, second) is None


def test_a_function_in_the_vpc_with_endpoints_idle_timeout_and_only_aws_region(aws_env, dns_server, stacks):
    # AWS_REGION alone: boto3 would read AWS_DEFAULT_REGION only.
    env = {k: v for k, v in aws_env.items() if k != "AWS_DEFAULT_REGION"}
    site = _site(aws_env, dns_server, 12)
    name = _stack_name()
    stacks.append(name)
    result = run_cli(
        env,
        *_deploy_args(site, name, dns_server, "--wire-notifications", "--json",
                      "--lambda-subnets", ",".join(site.subnets), "--create-vpc-endpoints", "--tcp-idle-timeout", "1200"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "CREATE_COMPLETE" and report["sync"]["ok"] is True
    outputs = report["outputs"]

    # The function runs in the VPC, in its subnets, behind a group that only allows HTTPS out.
    lam = aws_client(aws_env, "lambda")
    function = lam.get_function_configuration(FunctionName=outputs["FunctionName"])
    assert sorted(function["VpcConfig"]["SubnetIds"]) == sorted(site.subnets)
    (group_id,) = function["VpcConfig"]["SecurityGroupIds"]
    ec2 = aws_client(aws_env, "ec2")
    (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert group["VpcId"] == site.vpc
    assert [(r["IpProtocol"], r.get("FromPort"), r.get("ToPort")) for r in group["IpPermissionsEgress"]] == [("tcp", 443, 443)]
    # No reserved concurrency unless asked for.
    assert "Concurrency" not in lam.get_function(FunctionName=outputs["FunctionName"])

    # One interface endpoint per API the controller calls, in its subnets, with private DNS.
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [site.vpc]}])["VpcEndpoints"]
    assert sorted(e["ServiceName"] for e in endpoints) == [
        "com.amazonaws.us-east-1.dynamodb", "com.amazonaws.us-east-1.ec2", "com.amazonaws.us-east-1.elasticache",
        "com.amazonaws.us-east-1.elasticloadbalancing",
    ]
    assert all(e["VpcEndpointType"] == "Interface" and e["PrivateDnsEnabled"] for e in endpoints)

    # The TCP listeners (primary and reader) hold the idle timeout.
    elbv2 = aws_client(aws_env, "elbv2")
    (lb_arn,) = elbv2.describe_target_groups(TargetGroupArns=[outputs["TargetGroupArn"]])["TargetGroups"][0]["LoadBalancerArns"]
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
    assert sorted(lst["Port"] for lst in listeners) == [int(outputs["PrimaryPort"]), int(outputs["ReaderPort"])]
    for listener in listeners:
        attributes = {a["Key"]: a["Value"] for a in elbv2.describe_listener_attributes(ListenerArn=listener["ListenerArn"])["Attributes"]}
        assert attributes["tcp.idle_timeout.seconds"] == "1200"

    # The stack's topic carries ElastiCache's documented publish statement.
    policy = json.loads(aws_client(aws_env, "sns").get_topic_attributes(TopicArn=outputs["NotificationTopicArn"])["Attributes"]["Policy"])
    assert {
        "Sid": "AllowElastiCachePublish",
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": "SNS:Publish",
        "Resource": outputs["NotificationTopicArn"],
        "Condition": {"StringEquals": {"AWS:SourceOwner": "123456789012"}},
    } in policy["Statement"]


def test_package_uploads_once_under_its_content_key(aws_env):
    bucket = f"cb-artifacts-{uuid.uuid4().hex[:8]}"
    aws_client(aws_env, "s3").create_bucket(Bucket=bucket)
    first = run_cli(aws_env, "package", "--bucket", bucket, "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["uploaded"] is True
    assert report["location"] == f"s3://{bucket}/{report['key']}"
    stored = aws_client(aws_env, "s3").get_object(Bucket=bucket, Key=report["key"])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == report["sha256"]
    again = run_cli(aws_env, "package", "--bucket", bucket)
    assert again.returncode == 0, again.stderr
    assert f"s3://{bucket}/{report['key']}" in again.stdout
    assert "already there" in again.stdout


# -- bad input: a clear error before anything is created --------------------------------------


@pytest.fixture(scope="module")
def fresh_site(fresh_aws_env: dict[str, str]) -> Iterator[tuple[Site, str, LoopbackDnsServer]]:
    dns = LoopbackDnsServer().start()
    try:
        site = _site(fresh_aws_env, dns, 20)
        clustered = f"sharded-{uuid.uuid4().hex[:8]}"
        aws_client(fresh_aws_env, "elasticache").create_replication_group(
            ReplicationGroupId=clustered,
            ReplicationGroupDescription="cluster mode enabled",
            Engine="redis",
            CacheNodeType="cache.t4g.micro",
            ClusterMode="enabled",
            NumNodeGroups=2,
            ReplicasPerNodeGroup=1,
            SecurityGroupIds=[site.cache_sg],
        )
        sns = aws_client(fresh_aws_env, "sns")
        encrypted = sns.create_topic(Name="encrypted", Attributes={"KmsMasterKeyId": "alias/aws/sns"})["TopicArn"]
        sns.set_topic_attributes(TopicArn=encrypted, AttributeName="Policy", AttributeValue=json.dumps(
            {"Version": "2012-10-17", "Statement": [elasticache_publish_statement(encrypted, "123456789012")]}
        ))
        _EXTRA["encrypted_topic"] = encrypted
        # A new topic's default policy conditions on aws:SourceAccount.
        _EXTRA["source_account_topic"] = sns.create_topic(Name="source-account")["TopicArn"]
        ec2 = aws_client(fresh_aws_env, "ec2")
        other_vpc = ec2.create_vpc(CidrBlock="10.21.0.0/16")["Vpc"]["VpcId"]
        _EXTRA["other_vpc_subnet"] = ec2.create_subnet(VpcId=other_vpc, CidrBlock="10.21.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        yield site, clustered, dns
    finally:
        dns.stop()


def _without(args: list[str], flag: str) -> list[str]:
    i = args.index(flag)
    return args[:i] + args[i + 2 :]


def _value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _replace(args: list[str], flag: str, value: str) -> list[str]:
    i = args.index(flag)
    return args[: i + 1] + [value] + args[i + 2 :]


_EXTRA: dict[str, str] = {}  # filled by fresh_site

BAD_INPUT = {
    "encrypted-topic": (lambda a, clustered: [*a, "--notification-topic-arn", _EXTRA["encrypted_topic"]], ["--notification-topic-arn", "encrypted", "KmsMasterKeyId"]),
    "topic-without-elasticache-statement": (
        lambda a, clustered: [*a, "--notification-topic-arn", _EXTRA["source_account_topic"]],
        ["--notification-topic-arn", "add this statement", '"AWS:SourceOwner":"123456789012"'],
    ),
    "lambda-subnets-of-another-vpc": (lambda a, clustered: [*a, "--lambda-subnets", _EXTRA["other_vpc_subnet"]], ["--lambda-subnets", "not in"]),
    "vpc-endpoints-without-lambda-subnets": (lambda a, clustered: [*a, "--create-vpc-endpoints"], ["--create-vpc-endpoints", "--lambda-subnets"]),
    "tcp-idle-timeout-out-of-range": (lambda a, clustered: [*a, "--tcp-idle-timeout", "59"], ["--tcp-idle-timeout", "60..6000"]),
    "missing-allowed-cidr": (lambda a, clustered: _without(a, "--allowed-cidr"), ["--allowed-cidr", "missing"]),
    "any-source-not-on-purpose": (lambda a, clustered: _replace(a, "--allowed-cidr", "0.0.0.0/0"), ["--allowed-cidr", "--allow-any-source"]),
    "tls-without-certificate": (lambda a, clustered: [*a, "--listener-protocol", "TLS"], ["--certificate-arn", "TLS"]),
    "unknown-replication-group": (lambda a, clustered: _replace(a, "--replication-group", "no-such-group"), ["--replication-group", "no replication group 'no-such-group'"]),
    "switch-layout-on-cluster-mode": (lambda a, clustered: [*_replace(a, "--replication-group", clustered), "--layout", "switch"], ["--layout", "cluster mode enabled", "--layout cluster"]),
    # The replica lives in us-east-1b: an NLB only in us-east-1a could not follow a failover to it.
    "subnets-miss-a-cache-zone": (lambda a, clustered: _replace(a, "--subnets", _value(a, "--subnets").split(",")[0]), ["--subnets", "us-east-1b"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_refused_before_anything_is_created(fresh_aws_env, fresh_site, case):
    site, clustered, dns = fresh_site
    change, expected = BAD_INPUT[case]
    name = _stack_name("bad")
    result = run_cli(fresh_aws_env, *change(_deploy_args(site, name, dns, "--wire-notifications"), clustered))
    assert result.returncode == 2, (result.stdout, result.stderr)
    for text in expected:
        assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert aws_client(fresh_aws_env, "cloudformation").list_stacks()["StackSummaries"] == []
    assert aws_client(fresh_aws_env, "s3").list_buckets()["Buckets"] == []
    member = aws_client(fresh_aws_env, "elasticache").describe_cache_clusters(CacheClusterId=site.members[0])["CacheClusters"][0]
    assert "NotificationConfiguration" not in member


def test_switch_layout_deploys_node_slots_and_keeps_the_listener_on_the_primary(aws_env, dns_server, stacks, monkeypatch):
    site = _site(aws_env, dns_server, 14)
    name = _stack_name()
    stacks.append(name)
    result = run_cli(aws_env, *_deploy_args(site, name, dns_server, "--no-wire-notifications", "--json", layout="switch"), timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    outputs = report["outputs"]
    assert outputs["Layout"] == "switch" and "TargetGroupArn" not in outputs
    # Two members and two slots of room: four node listeners after the reader's port.
    assert (outputs["PrimaryPort"], outputs["ReaderPort"], outputs["NodePorts"]) == (
        str(site.port), str(site.port + 1), ",".join(str(site.port + 2 + i) for i in range(4))
    )
    primary, reader = report["sync"]["report"]["bindings"]
    assert report["sync"]["ok"] is True, report["sync"]
    assert (primary["layout"], primary["status"], reader["layout"]) == ("switch", "changed", "retarget")

    elbv2 = aws_client(aws_env, "elbv2")
    listener = elbv2.describe_listeners(ListenerArns=[outputs["PrimaryListenerArn"]])["Listeners"][0]
    forward = listener["DefaultActions"][0]["TargetGroupArn"]
    # The primary took the slot the listener forwards to: no switch was needed.
    assert primary["forward_after"] == forward and primary["switched"] is False
    assert _registered(aws_env, forward) == {Target(site.primary_ip, site.port)}
    nodes = primary["nodes"]
    assert {n["target"] for n in nodes.values()} == {f"{site.primary_ip}:{site.port}", f"{site.replica_ip}:{site.port}"}
    listeners = elbv2.describe_listeners(LoadBalancerArn=listener["LoadBalancerArn"])["Listeners"]
    assert sorted(lst["Port"] for lst in listeners) == [site.port, site.port + 1, *(site.port + 2 + i for i in range(4))]
    for node in nodes.values():
        attributes = {a["Key"]: a["Value"] for a in elbv2.describe_target_group_attributes(TargetGroupArn=node["target_group"])["Attributes"]}
        assert attributes["deregistration_delay.timeout_seconds"] == "0"
        assert attributes["deregistration_delay.connection_termination.enabled"] == "true"
    assert _registered(aws_env, outputs["ReaderTargetGroupArn"]) == {Target(site.replica_ip, site.port)}

    # A second sync by the deployed function's own environment changes nothing.
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    again = deploy_stack.run_sync("local", outputs["FunctionName"], clients=deploy_stack.Clients(), nameservers=[dns_server.address])
    assert again is not None and again["ok"] is True, again
    assert [b["status"] for b in again["report"]["bindings"]] == ["in_sync", "in_sync"]


def test_cluster_mode_group_deploys_the_cluster_layout_and_endpoints_prints_its_map(aws_env, dns_server, stacks):
    ec2, elasticache = aws_client(aws_env, "ec2"), aws_client(aws_env, "elasticache")
    octet = 17
    vpc = ec2.create_vpc(CidrBlock=f"10.{octet}.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{octet}.{i}.0/24", AvailabilityZone=f"us-east-1{zone}")["Subnet"]["SubnetId"]
        for i, zone in ((1, "a"), (2, "b"))
    ]
    cache_sg = ec2.create_security_group(GroupName=f"cache-{uuid.uuid4().hex[:8]}", Description="cache nodes", VpcId=vpc)["GroupId"]
    rg_id = f"sessions-{uuid.uuid4().hex[:8]}"
    elasticache.create_replication_group(
        ReplicationGroupId=rg_id, ReplicationGroupDescription="sessions", Engine="redis", CacheNodeType="cache.t4g.micro",
        ClusterMode="enabled", NumNodeGroups=3, ReplicasPerNodeGroup=1, SecurityGroupIds=[cache_sg], Port=6379,
    )
    ips = {}
    for shard in (1, 2, 3):
        for member in (1, 2):
            cid = f"{rg_id}-000{shard}-00{member}"
            node = elasticache.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]["CacheNodes"][0]
            ips[cid] = f"10.{octet}.{member}.{10 + shard}"
            dns_server.zone.set_a(node["Endpoint"]["Address"], ips[cid])
    name = _stack_name()
    stacks.append(name)
    args = ["deploy", "--stack-name", name, "--replication-group", rg_id, "--vpc", vpc, "--subnets", ",".join(subnets),
            "--allowed-cidr", CLIENT_CIDR, "--invoke", "local", "--nameserver", dns_server.address, "--poll-interval", "0.2",
            "--timeout", "60", "--no-wire-notifications", "--json"]  # no --layout: cluster mode picks the cluster layout
    result = run_cli(aws_env, *args, timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    outputs = report["outputs"]
    # Six nodes and two slots of room: eight node listeners after the (unused) reader port.
    assert outputs["Layout"] == "cluster" and "ReaderPort" not in outputs
    assert outputs["NodePorts"] == ",".join(str(6379 + 2 + i) for i in range(8))
    nodes_binding, config_binding = report["sync"]["report"]["bindings"]
    assert (nodes_binding["layout"], nodes_binding["status"]) == ("cluster", "changed"), report["sync"]
    assert {cid: n["target"] for cid, n in nodes_binding["nodes"].items()} == {cid: f"{ip}:6379" for cid, ip in ips.items()}
    for node in nodes_binding["nodes"].values():
        assert _registered(aws_env, node["target_group"]) == {Target.parse(node["target"])}
    # The configuration group fills within max_changes per run.
    assert config_binding["layout"] == "retarget" and _registered(aws_env, outputs["ConfigTargetGroup"]) <= {Target(ip, 6379) for ip in ips.values()}

    shown = run_cli(aws_env, "endpoints", "--stack-name", name, "--json")
    assert shown.returncode == 0, shown.stderr
    m = json.loads(shown.stdout)["cluster_maps"][name]
    assert m["config_port"] == 6379 and set(m["map"]) == {f"{ip}:6379" for ip in ips.values()}
    assert {int(v.rsplit(":", 1)[1]) for v in m["map"].values()} <= {6381 + i for i in range(8)}


def test_an_update_keeps_the_stacks_layout_unless_asked(aws_env, dns_server, stacks):
    site = _site(aws_env, dns_server, 16)
    name = _stack_name()
    stacks.append(name)
    first = run_cli(aws_env, *_deploy_args(site, name, dns_server, "--no-wire-notifications", "--json", layout="retarget"), timeout=120)
    assert first.returncode == 0, first.stderr
    # No --layout: the update keeps retarget rather than moving the primary listener.
    args = [a for a in _deploy_args(site, name, dns_server, "--no-wire-notifications", "--json") if a not in ("--layout", "retarget")]
    again = run_cli(aws_env, *args, timeout=120)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["action"] == "none" and report["outputs"]["Layout"] == "retarget"


def test_bindings_past_the_environment_limit_travel_in_the_zip_and_the_deployed_handler_reads_them(aws_env, dns_server, stacks, tmp_path):
    import io
    import zipfile
    from cachebridge.deploy.package import CONFIG_FILE_NAME

    COUNT = 60
    site = _site(aws_env, dns_server, 14)
    name = _stack_name()
    stacks.append(name)
    elbv2 = aws_client(aws_env, "elbv2")
    run = uuid.uuid4().hex[:6]

    def target_group(i: int) -> str:
        return elbv2.create_target_group(
            Name=f"x{run}-{i}", Protocol="TCP", Port=site.port, VpcId=site.vpc, TargetType="ip",
            Tags=[{"Key": "cachebridge:owner", "Value": name}],
        )["TargetGroups"][0]["TargetGroupArn"]

    # 60 bindings are three times Lambda's 4 KB of environment, and few enough that the
    # deployed function's first pass, paced to ELB's documented Describe bucket, covers them.
    arns = [target_group(i) for i in range(COUNT)]  # one at a time: moto serves creates unlocked
    host = f"shared.{run}.example.internal"
    dns_server.zone.set_a(host, "10.14.1.50")
    more = tmp_path / "more.json"
    more.write_text(json.dumps({"bindings": [
        {"name": f"extra-{i:04d}", "source": f"dns://{host}", "target_group": arn, "port": site.port}
        for i, arn in enumerate(arns)
    ]}))

    result = run_cli(aws_env, *_deploy_args(site, name, dns_server, "--no-wire-notifications", "--config", str(more), "--json"), timeout=900)

    assert result.returncode == 0, (result.stderr[-1500:], result.stdout[-200:], [b for b in json.loads(result.stdout).get("sync", {}).get("report", {}).get("bindings", []) if b["status"] != "changed"][:3] and [(b["status"], b["error"]) for b in json.loads(result.stdout).get("sync", {}).get("report", {}).get("bindings", []) if b["status"] != "changed"][:2])
    report = json.loads(result.stdout)
    # Far past Lambda's 4 KB of environment: the bindings are a file in the zip.
    environment = aws_client(aws_env, "lambda").get_function_configuration(FunctionName=report["outputs"]["FunctionName"])["Environment"]["Variables"]
    assert environment["CACHEBRIDGE_CONFIG_FILE"] == CONFIG_FILE_NAME
    assert "CACHEBRIDGE_EXTRA_BINDINGS" not in environment
    assert len(json.dumps(environment)) < 4096
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in _stack(aws_env, name)["Parameters"]}
    code = aws_client(aws_env, "s3").get_object(Bucket=parameters["CodeBucket"], Key=parameters["CodeKey"])["Body"].read()
    shipped = json.loads(zipfile.ZipFile(io.BytesIO(code)).read(CONFIG_FILE_NAME))
    assert [b["target_group"] for b in shipped["bindings"]] == arns
    assert any(CONFIG_FILE_NAME in note for note in report["notes"])

    # The deployed function's handler, run in-process from that zip, followed all 1,002
    # (the stack's own primary and replicas bindings, then the extra ones).
    sync = report["sync"]
    assert sync["ok"] is True, sync.get("error")
    names = [b["name"] for b in sync["report"]["bindings"]]
    assert len(names) == COUNT + 2 and names[2:] == [f"extra-{i:04d}" for i in range(COUNT)]
    assert {b["status"] for b in sync["report"]["bindings"]} == {"changed"}
    for arn in (arns[0], arns[COUNT // 2], arns[-1]):
        assert _registered(aws_env, arn) == {Target("10.14.1.50", site.port)}
    assert _registered(aws_env, report["outputs"]["TargetGroupArn"]) == {Target(site.primary_ip, site.port)}


def test_a_deploy_with_bytecode_uploads_and_points_the_function_at_the_bytecode_zip(aws_env, dns_server, stacks, monkeypatch):
    import base64
    import io
    import sys
    import zipfile

    from cachebridge.deploy import package
    from cachebridge.deploy.request import DeployRequest

    site = _site(aws_env, dns_server, 14)
    name = _stack_name()
    stacks.append(name)
    for key, value in aws_env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    # The running interpreter stands in for the runtime's (no Python 3.13 needed here).
    options = package.BytecodeOptions(package.find_runtime_python(sys.executable, sys.version_info[:2]))
    request = DeployRequest(stack_name=name, replication_group_id=site.rg_id, vpc_id=site.vpc,
                            subnet_ids=tuple(site.subnets), allowed_cidrs=(CLIENT_CIDR,), layout="retarget")
    result = deploy_stack.deploy(request, clients=deploy_stack.Clients(), invoke="none", wire_notifications=False,
                                 poll_s=0.2, timeout_s=60, bytecode=options)
    assert result.ok, result.to_json()
    built = package.build(bytecode=options)
    assert result.key == built.key != package.build().key
    body = aws_client(aws_env, "s3").get_object(Bucket=result.bucket, Key=result.key)["Body"].read()
    assert body == built.data
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert f"cachebridge/__pycache__/handler.{sys.implementation.cache_tag}.pyc" in archive.namelist()
    function = aws_client(aws_env, "lambda").get_function(FunctionName=_outputs(_stack(aws_env, name))["FunctionName"])
    # The function runs that zip: Lambda's CodeSha256 is the base64 SHA-256 of the code it got.
    assert function["Configuration"]["CodeSha256"] == base64.b64encode(hashlib.sha256(built.data).digest()).decode()
