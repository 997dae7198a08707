"""The cluster layout end to end: ``sync()`` against moto in-process (with ``moto_ext``), a
cluster-mode-enabled replication group in moto's ElastiCache (3 shards x 2 nodes), node
names on a loopback DNS server, one NLB with a listener per node target group and a
configuration listener whose group holds every node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID

from cachebridge.config import Config, ElastiCacheSourceSpec
from cachebridge.nlb import TargetGroups
from cachebridge.sandbox import moto_ext
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sandbox.moto_ext.elasticache import set_cluster_topology
from cachebridge.sources import DnsResolver, Sources
from cachebridge.switch_planner import NODE_TAG
from cachebridge.sync import SyncReport, sync
from cachebridge.targets import Target

from .conftest import REGION, CallLog

pytestmark = pytest.mark.timeout(60)

PORT = 6379
RG = "sessions"
SLOTS = 8


@dataclass
class Stack:
    slots: list[str]
    config_tg: str
    config: Config
    ips: dict[str, str]  # cache cluster id -> address


def node_ip(cluster_id: str) -> str:
    shard, member = cluster_id.split("-")[-2:]
    return f"10.0.{int(shard)}.{int(member)}"


def publish(elasticache: Any, zone: Any, ips: dict[str, str]) -> None:
    """Put every member's node name in the zone, as the VPC resolver has them."""
    rg = elasticache.describe_replication_groups(ReplicationGroupId=RG)["ReplicationGroups"][0]
    for group in rg["NodeGroups"]:
        for m in group["NodeGroupMembers"]:
            cid = m["CacheClusterId"]
            name = elasticache.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]["CacheNodes"][0]["Endpoint"]["Address"]
            ips.setdefault(cid, node_ip(cid))
            zone.set_a(name, ips[cid])


@pytest.fixture
def stack(aws: None, ec2: Any, elbv2: Any, dns_server: LoopbackDnsServer) -> Stack:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    lb = elbv2.create_load_balancer(Name="sessions", Subnets=[subnet], Type="network")["LoadBalancers"][0]["LoadBalancerArn"]

    def group(name: str) -> str:
        return elbv2.create_target_group(Name=name, Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip", HealthCheckProtocol="TCP")["TargetGroups"][0]["TargetGroupArn"]

    slots = []
    for i in range(SLOTS):
        arn = group(f"sessions-n{i + 1}")
        elbv2.create_listener(LoadBalancerArn=lb, Protocol="TCP", Port=16380 + i, DefaultActions=[{"Type": "forward", "TargetGroupArn": arn}])
        slots.append(arn)
    config_tg = group("sessions-config")
    elbv2.create_listener(LoadBalancerArn=lb, Protocol="TCP", Port=PORT, DefaultActions=[{"Type": "forward", "TargetGroupArn": config_tg}])
    elasticache = boto3.client("elasticache", region_name=REGION)
    elasticache.create_replication_group(
        ReplicationGroupId=RG, ReplicationGroupDescription="sessions", ClusterMode="enabled", NumNodeGroups=3,
        ReplicasPerNodeGroup=1, Port=PORT, Engine="redis",
    )
    ips: dict[str, str] = {}
    publish(elasticache, dns_server.zone, ips)
    config = Config.from_mapping({
        "settings": {"nameservers": [dns_server.address], "dns_timeout_s": 0.5, "event_wait_s": 0, "max_changes": 20},
        "bindings": [
            {"name": "sessions-nodes", "source": f"elasticache://{RG}?role=cluster", "layout": "cluster",
             "node_target_groups": [f"sessions-n{i + 1}" for i in range(SLOTS)], "port": PORT},
            {"name": "sessions-config", "source": f"elasticache://{RG}?role=cluster", "target_group": "sessions-config", "port": PORT},
        ],
    })
    return Stack(slots, config_tg, config, ips)


def run(stack: Stack, elbv2: Any, dry_run: bool = False) -> SyncReport:
    settings = stack.config.settings
    sources = Sources(DnsResolver(settings.nameservers, settings.dns_timeout_s), boto3.client("elasticache", region_name=REGION))
    return sync(stack.config, target_groups=TargetGroups(elbv2, boto3.client("ec2", region_name=REGION)), sources=sources, dry_run=dry_run)


def members(elbv2: Any, arn: str) -> set[Target]:
    return {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]}


def tags(elbv2: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]}


def slot_map(elbv2: Any, stack: Stack) -> dict[str, tuple[int, set[Target]]]:
    """node -> (slot index, its slot's members)."""
    out = {}
    for i, arn in enumerate(stack.slots):
        node = tags(elbv2, arn).get(NODE_TAG)
        if node:
            out[node] = (i, members(elbv2, arn))
    return out


def test_role_cluster_reads_every_node_of_every_shard(stack: Stack) -> None:
    settings = stack.config.settings
    sources = Sources(DnsResolver(settings.nameservers, settings.dns_timeout_s), boto3.client("elasticache", region_name=REGION))
    reading = sources.read(ElastiCacheSourceSpec(RG, "cluster"))
    assert set(reading.addresses) == set(stack.ips.values()) and len(reading.addresses) == 6
    assert reading.detail["shards"] == {cid: cid.split("-")[1] for cid in stack.ips}
    assert reading.port == PORT


def test_first_sync_gives_each_node_a_slot_and_the_configuration_group_every_node(stack: Stack, elbv2: Any) -> None:
    report = run(stack, elbv2)
    assert [b.status for b in report.bindings] == ["changed", "changed"], [b.error for b in report.bindings]
    placed = slot_map(elbv2, stack)
    assert {node: targets for node, (_, targets) in placed.items()} == {cid: {Target(ip, PORT)} for cid, ip in stack.ips.items()}
    assert sorted(i for i, _ in placed.values()) == list(range(6))  # the lowest slots, 6 and 7 free
    assert members(elbv2, stack.config_tg) == {Target(ip, PORT) for ip in stack.ips.values()}
    nodes = report.bindings[0].to_json()["nodes"]
    assert nodes["sessions-0002-001"]["shard"] == "0002" and nodes["sessions-0002-001"]["target"] == f"{node_ip('sessions-0002-001')}:{PORT}"
    # Applied: the next pass changes nothing.
    again = run(stack, elbv2)
    assert [b.status for b in again.bindings] == ["in_sync", "in_sync"]


def test_scale_out_keeps_every_nodes_port_and_scale_in_frees_a_slot_once_drained(stack: Stack, elbv2: Any, dns_server: LoopbackDnsServer) -> None:
    run(stack, elbv2)
    before = {node: i for node, (i, _) in slot_map(elbv2, stack).items()}
    shards = {f"000{s}": [f"{RG}-000{s}-001", f"{RG}-000{s}-002"] for s in (1, 2, 3)}
    shards["0004"] = [f"{RG}-0004-001", f"{RG}-0004-002"]
    set_cluster_topology(DEFAULT_ACCOUNT_ID, REGION, RG, shards)
    publish(boto3.client("elasticache", region_name=REGION), dns_server.zone, stack.ips)
    assert run(stack, elbv2).bindings[0].status == "changed"
    after = slot_map(elbv2, stack)
    assert {node: after[node][0] for node in before} == before
    assert after[f"{RG}-0004-001"] == (6, {Target(stack.ips[f"{RG}-0004-001"], PORT)})
    assert after[f"{RG}-0004-002"] == (7, {Target(stack.ips[f"{RG}-0004-002"], PORT)})
    from cachebridge.address_map import read

    grown = read(elbv2, [f"sessions-n{i + 1}" for i in range(SLOTS)], "sessions-config")
    assert {r.node for r in grown.routes} == set(stack.ips) and all(r.health == "healthy" for r in grown.routes)

    # Scale in: shard 0002 goes. Its slots are emptied; while a target drains the slot keeps
    # its tag (its old connections may still be open), then it is freed.
    gone = {f"{RG}-0002-001", f"{RG}-0002-002"}
    set_cluster_topology(DEFAULT_ACCOUNT_ID, REGION, RG, {k: v for k, v in shards.items() if k != "0002"})
    draining_slot = stack.slots[before[f"{RG}-0002-001"]]
    draining = (stack.ips[f"{RG}-0002-001"], PORT)
    previous = moto_ext.set_draining_provider(lambda arn: [draining] if arn == draining_slot else [])
    try:
        report = run(stack, elbv2)
        assert report.bindings[0].status == "changed"
        assert set(report.bindings[0].deregister) == {Target(stack.ips[c], PORT) for c in gone}
        assert tags(elbv2, draining_slot).get(NODE_TAG) == f"{RG}-0002-001"
        assert members(elbv2, stack.config_tg) == {Target(stack.ips[c], PORT) for c in stack.ips if c not in gone}
    finally:
        moto_ext.set_draining_provider(previous)
    run(stack, elbv2)
    assert NODE_TAG not in tags(elbv2, draining_slot)
    assert set(slot_map(elbv2, stack)) == set(stack.ips) - gone


def test_more_nodes_than_slots_is_an_error_that_says_what_to_do(stack: Stack, elbv2: Any, dns_server: LoopbackDnsServer) -> None:
    shards = {f"000{s}": [f"{RG}-000{s}-001", f"{RG}-000{s}-002", f"{RG}-000{s}-003"] for s in (1, 2, 3)}
    set_cluster_topology(DEFAULT_ACCOUNT_ID, REGION, RG, shards)
    publish(boto3.client("elasticache", region_name=REGION), dns_server.zone, stack.ips)
    result = run(stack, elbv2).bindings[0]
    assert result.status == "error"
    assert "no node slot for sessions-0003-003: the stack has 8 node listeners for 9 nodes" in (result.error or "")
    assert "redeploy with more node slots" in (result.error or "")
    assert len(slot_map(elbv2, stack)) == SLOTS  # the nodes that fit are placed


def test_a_source_error_changes_nothing(stack: Stack, elbv2: Any, dns_server: LoopbackDnsServer) -> None:
    run(stack, elbv2)
    before = slot_map(elbv2, stack)
    calls = CallLog(elbv2)
    one = f"{RG}-0002-002"
    name = boto3.client("elasticache", region_name=REGION).describe_cache_clusters(CacheClusterId=one, ShowCacheNodeInfo=True)["CacheClusters"][0]["CacheNodes"][0]["Endpoint"]["Address"]
    dns_server.zone.remove(name)  # one node's name does not resolve: NXDOMAIN
    result = run(stack, elbv2).bindings[0]
    assert result.status == "error" and result.source_error
    assert calls.writes() == []
    assert slot_map(elbv2, stack) == before


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("203.0.113.7", "203.0.113.7 is outside the VPC (10.0.0.0/16) and publicly routable"),
        ("192.168.4.4", "set allow_outside_vpc = true"),
    ],
)
def test_a_node_address_the_answer_checks_refuse_changes_nothing(stack: Stack, elbv2: Any, dns_server: LoopbackDnsServer, address: str, says: str) -> None:
    run(stack, elbv2)
    before = {arn: members(elbv2, arn) for arn in stack.slots}
    before_tags = {arn: tags(elbv2, arn) for arn in stack.slots}
    calls = CallLog(elbv2)
    # One node is replaced and its new name resolves to an address no NLB target may be.
    stack.ips[f"{RG}-0003-002"] = address
    publish(boto3.client("elasticache", region_name=REGION), dns_server.zone, stack.ips)
    report = run(stack, elbv2)
    nodes, everyone = report.bindings
    for result in (nodes, everyone):
        assert result.status == "error" and result.source_error
        assert "answer refused" in (result.error or "") and says in (result.error or "")
    assert calls.writes() == []
    assert {arn: members(elbv2, arn) for arn in stack.slots} == before
    assert {arn: tags(elbv2, arn) for arn in stack.slots} == before_tags


def test_a_cluster_binding_may_take_nodes_outside_the_vpc_when_it_says_so(stack: Stack, elbv2: Any, dns_server: LoopbackDnsServer) -> None:
    from dataclasses import replace

    stack.ips[f"{RG}-0003-002"] = "192.168.4.4"
    publish(boto3.client("elasticache", region_name=REGION), dns_server.zone, stack.ips)
    nodes, everyone = stack.config.bindings
    stack.config = replace(stack.config, bindings=(replace(nodes, allow_outside_vpc=True), replace(everyone, allow_outside_vpc=True)))
    calls = CallLog(elbv2)
    report = run(stack, elbv2)
    assert [b.status for b in report.bindings] == ["changed", "changed"], [b.error for b in report.bindings]
    assert slot_map(elbv2, stack)[f"{RG}-0003-002"][1] == {Target("192.168.4.4", PORT)}
    # Registered the way ELB takes an address outside the VPC.
    outside = [t for params in calls.of("RegisterTargets") for t in params["Targets"] if t["Id"] == "192.168.4.4"]
    assert outside and all(t.get("AvailabilityZone") == "all" for t in outside)


def test_a_cluster_answer_over_max_targets_is_refused_whole(stack: Stack, elbv2: Any) -> None:
    from dataclasses import replace

    nodes, everyone = stack.config.bindings
    stack.config = replace(stack.config, bindings=(replace(nodes, max_targets=5),))
    calls = CallLog(elbv2)
    (result,) = run(stack, elbv2).bindings
    assert result.status == "error" and "the answer has 6 addresses, more than max_targets = 5" in (result.error or "")
    assert calls.writes() == [] and slot_map(elbv2, stack) == {}


@pytest.mark.parametrize(
    ("mode", "role", "says"),
    [
        ("enabled", "primary", "use elasticache://sessions?role=cluster"),
        ("enabled", "replicas", "use elasticache://sessions?role=cluster"),
        ("disabled", "cluster", "use role=primary (writes) or role=replicas"),
    ],
)
def test_a_role_that_does_not_fit_the_mode_is_refused_clearly(aws: None, mode: str, role: str, says: str) -> None:
    elasticache = boto3.client("elasticache", region_name=REGION)
    extra: dict[str, Any] = {"ClusterMode": "enabled", "NumNodeGroups": 2} if mode == "enabled" else {"NumCacheClusters": 2}
    elasticache.create_replication_group(ReplicationGroupId=RG, ReplicationGroupDescription="s", Engine="redis", **extra)
    sources = Sources(DnsResolver(("127.0.0.1:9",), 0.2), elasticache)
    with pytest.raises(Exception) as info:
        sources.read(ElastiCacheSourceSpec(RG, role))  # type: ignore[arg-type]
    assert says in str(info.value)


def test_a_group_migrating_between_modes_is_refused_by_every_role(aws: None) -> None:
    from moto.elasticache.models import elasticache_backends

    elasticache = boto3.client("elasticache", region_name=REGION)
    elasticache.create_replication_group(ReplicationGroupId=RG, ReplicationGroupDescription="s", Engine="redis", NumCacheClusters=2)
    elasticache_backends[DEFAULT_ACCOUNT_ID][REGION].replication_groups[RG].cluster_mode = "compatible"
    for role in ("primary", "replicas", "cluster"):
        sources = Sources(DnsResolver(("127.0.0.1:9",), 0.2), elasticache)
        with pytest.raises(Exception, match="'compatible'.*finish it"):
            sources.read(ElastiCacheSourceSpec(RG, role))  # type: ignore[arg-type]


def test_the_address_map_reads_each_nodes_port_from_the_nlb(stack: Stack, elbv2: Any) -> None:
    from cachebridge.address_map import read

    run(stack, elbv2)
    m = read(elbv2, [f"sessions-n{i + 1}" for i in range(SLOTS)], "sessions-config")
    dns = elbv2.describe_load_balancers()["LoadBalancers"][0]["DNSName"]
    placed = slot_map(elbv2, stack)
    assert m.config_port == PORT and m.nlb_host == dns
    assert m.mapping() == {f"{stack.ips[node]}:{PORT}": f"{dns}:{16380 + i}" for node, (i, _) in placed.items()}
    assert {r.node for r in m.routes} == set(stack.ips)


def test_endpoints_prints_the_map_and_a_snippet_per_cluster_client(stack: Stack, elbv2: Any, tmp_path: Any) -> None:
    import json

    from click.testing import CliRunner

    from cachebridge.cli import cli

    run(stack, elbv2)
    path = tmp_path / "cachebridge.json"
    path.write_text(json.dumps(stack.config.to_mapping()))
    result = CliRunner().invoke(cli, ["endpoints", "--config", str(path), "--region", REGION, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["endpoints"] == {}  # the configuration listener is in the map, not a second entry
    m = out["cluster_maps"]["sessions-nodes"]
    assert len(m["map"]) == 6 and m["config_port"] == PORT
    assert set(m["clients"]) == {"redis-py", "ioredis", "node-redis", "Lettuce", "go-redis"}
    for announced, nlb in m["map"].items():
        assert announced in m["clients"]["ioredis"]["code"] and nlb.split(":")[1] in m["clients"]["go-redis"]["code"]
    text = CliRunner().invoke(cli, ["endpoints", "--config", str(path), "--region", REGION])
    assert text.exit_code == 0, text.output
    assert "cluster mode, configuration listener" in text.output and "address_remap" in text.output


def test_endpoints_reads_the_map_of_a_cluster_layout_stack_from_its_outputs(stack: Stack, elbv2: Any) -> None:
    import json

    from cachebridge.address_map import read_stack

    run(stack, elbv2)
    cfn = boto3.client("cloudformation", region_name=REGION)
    outputs = {
        "Layout": "cluster",
        "NodeTargetGroups": ",".join(stack.slots),
        "ConfigTargetGroup": stack.config_tg,
    }
    cfn.create_stack(StackName="sessions-external", TemplateBody=json.dumps({
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }))
    m = read_stack("sessions-external", clients=lambda name: boto3.client(name, region_name=REGION))
    assert m is not None and m.config_port == PORT
    assert set(m.mapping()) == {f"{ip}:{PORT}" for ip in stack.ips.values()}
    cfn.create_stack(StackName="orders-external", TemplateBody=json.dumps({
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": {"Layout": {"Value": "switch"}},
    }))
    assert read_stack("orders-external", clients=lambda name: boto3.client(name, region_name=REGION)) is None
