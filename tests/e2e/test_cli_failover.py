"""`cachebridge sync` through the CLI follows a real Redis failover."""

from __future__ import annotations

import json
import uuid

from cachebridge.targets import Target

from .conftest import run_cli

DOMAIN = "orders.x1y2z3.use1.cache.amazonaws.com"
PRIMARY = f"master.{DOMAIN}"
NODE_1 = f"orders-001.{DOMAIN}"
NODE_2 = f"orders-002.{DOMAIN}"


def _target_group(clients, port: int) -> str:
    vpc = clients["ec2"].create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    name = "orders-" + uuid.uuid4().hex[:8]
    tg = clients["elbv2"].create_target_group(
        Name=name, Protocol="TCP", Port=port, VpcId=vpc, TargetType="ip", HealthCheckProtocol="TCP"
    )["TargetGroups"][0]
    clients["elbv2"].modify_target_group_attributes(
        TargetGroupArn=tg["TargetGroupArn"],
        Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "5"},
            {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"},
        ],
    )
    return name


def _registered(clients, name: str) -> set[Target]:
    arn = clients["elbv2"].describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"]
    health = clients["elbv2"].describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in health}


def test_sync_follows_failover_and_refuses_to_act_blind(aws_env, aws_clients, dns_server, redis_pair):
    primary, replica = redis_pair
    port = primary.port
    zone = dns_server.zone
    zone.set_a(NODE_1, primary.host)
    zone.set_a(NODE_2, replica.host)
    zone.set_cname(PRIMARY, NODE_1)
    tg = _target_group(aws_clients, port)
    args = ["sync", "--source", f"dns://{PRIMARY}", "--target-group", tg, "--port", str(port),
            "--nameserver", dns_server.address, "--dns-timeout", "0.5", "--allow-target-network", "127.0.0.0/8", "--json"]

    first = run_cli(aws_env, *args)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)["bindings"][0]
    assert report["status"] == "changed"
    assert report["register"] == [f"127.0.0.2:{port}"]
    assert _registered(aws_clients, tg) == {Target("127.0.0.2", port)}
    assert primary.role() == "master"

    # Fail over the way ElastiCache does: promote the replica, demote the old primary,
    # then move the primary endpoint's CNAME.
    replica.promote()
    primary.follow(replica)
    primary.wait_role("slave")
    zone.set_cname(PRIMARY, NODE_2)

    second = run_cli(aws_env, *args)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)["bindings"][0]
    assert report["status"] == "changed"
    assert report["register"] == [f"127.0.0.3:{port}"]
    assert report["deregister"] == [f"127.0.0.2:{port}"]
    registered = _registered(aws_clients, tg)
    assert registered == {Target("127.0.0.3", port)}
    (only,) = registered
    node = {primary.host: primary, replica.host: replica}[only.ip]
    assert node.role() == "master"
    node.command("SET", "written-through-the-target", "1")  # a replica would refuse: READONLY

    third = run_cli(aws_env, *args)
    assert third.returncode == 0, third.stderr
    report = json.loads(third.stdout)["bindings"][0]
    assert report["status"] == "in_sync"
    assert report["register"] == report["deregister"] == []

    # DNS down: the run fails loudly and the target group keeps its target.
    dns_server.stop()
    blind = run_cli(aws_env, *args)
    assert blind.returncode == 1
    report = json.loads(blind.stdout)["bindings"][0]
    assert report["status"] == "error"
    assert "dns://" in report["error"]
    assert report["deregister"] == []
    assert _registered(aws_clients, tg) == {Target("127.0.0.3", port)}


def test_status_shows_health_and_drift_without_changing_anything(aws_env, aws_clients, dns_server, redis_pair):
    primary, replica = redis_pair
    port = primary.port
    dns_server.zone.set_a(NODE_1, primary.host)
    dns_server.zone.set_cname(PRIMARY, NODE_1)
    tg = _target_group(aws_clients, port)
    common = ["--source", f"dns://{PRIMARY}", "--target-group", tg, "--port", str(port),
              "--nameserver", dns_server.address, "--allow-target-network", "127.0.0.0/8"]

    status = run_cli(aws_env, "status", *common, "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)["bindings"][0]
    assert report["status"] == "dry_run"
    assert report["drift"] == 1
    assert report["register"] == [f"127.0.0.2:{port}"]
    assert _registered(aws_clients, tg) == set()

    assert run_cli(aws_env, "sync", *common).returncode == 0
    table = run_cli(aws_env, "status", *common)
    assert table.returncode == 0, table.stderr
    assert f"127.0.0.2:{port}" in table.stdout
    assert "healthy" in table.stdout or "initial" in table.stdout


def test_usage_and_config_errors_exit_2(aws_env):
    missing = run_cli(aws_env, "sync")
    assert missing.returncode == 2
    assert "--config" in missing.stderr
    bad = run_cli(aws_env, "sync", "--source", "http://x", "--target-group", "tg")
    assert bad.returncode == 2
    assert "--source" in bad.stderr and "dns://" in bad.stderr


def test_unknown_target_group_fails_with_a_clear_error(aws_env, dns_server):
    dns_server.zone.set_a(NODE_1, "127.0.0.2")
    result = run_cli(aws_env, "sync", "--source", f"dns://{NODE_1}", "--target-group", "no-such-group",
                     "--nameserver", dns_server.address, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)["bindings"][0]
    assert report["status"] == "error"
    assert "no-such-group" in report["error"]


def test_sync_refuses_a_group_a_deployed_stack_owns_unless_forced(aws_env, aws_clients, dns_server):
    dns_server.zone.set_a(NODE_1, "10.0.1.10")
    tg = _target_group(aws_clients, 6379)
    arn = aws_clients["elbv2"].describe_target_groups(Names=[tg])["TargetGroups"][0]["TargetGroupArn"]
    aws_clients["elbv2"].add_tags(ResourceArns=[arn], Tags=[{"Key": "cachebridge:owner", "Value": "orders-external"}])
    args = ["sync", "--source", f"dns://{NODE_1}", "--target-group", tg, "--nameserver", dns_server.address, "--json"]

    refused = run_cli(aws_env, *args)
    assert refused.returncode == 1
    report = json.loads(refused.stdout)["bindings"][0]
    assert report["status"] == "error"
    assert "orders-external" in report["error"] and "--force" in report["error"]
    assert _registered(aws_clients, tg) == set()

    forced = run_cli(aws_env, *args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["bindings"][0]["status"] == "changed"
    assert _registered(aws_clients, tg) == {Target("10.0.1.10", 6379)}
