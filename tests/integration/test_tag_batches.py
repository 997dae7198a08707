"""Before a round writes, the tags (owner, lock table) of the groups it writes are read
again, 20 groups a DescribeTags call, on every pass that writes; attributes only on this
instance's first write to a group. A group another stack owns is refused whether it was
found in a batch or tagged after this instance cached it; a batch that fails, or an answer
that leaves a group out, leaves those groups unwritten and holding what they held, and
every other group is written. Moto in-process (with ``moto_ext``: DescribeTags refuses a
21st ARN and a deleted group, as AWS does), a real DNS server on loopback, DNS sources."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from cachebridge import nlb
from cachebridge.config import Binding, Config, DnsSourceSpec, Settings
from cachebridge.nlb import DESCRIBE_TAGS_CHUNK, LOCK_TABLE_TAG, OWNER_TAG, TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sandbox.moto_ext.describe_tags import MAX_RESOURCE_ARNS
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import SyncReport, sync
from cachebridge.targets import Target

from .conftest import REGION, CallLog, registered

pytestmark = pytest.mark.timeout(120)

PORT = 6379
GROUPS = 45  # three DescribeTags calls: 20, 20 and 5
MINE = "orders-mine"


def old_ip(i: int) -> str:
    return f"10.0.1.{i + 10}"


def new_ip(i: int) -> str:
    return f"10.0.2.{i + 10}"


def host(i: int) -> str:
    return f"g{i:02d}.cache.test"


@pytest.fixture
def groups(elbv2: Any, ec2: Any, dns_server: LoopbackDnsServer) -> list[str]:
    """``GROUPS`` IP target groups ``g00``... each holding ``old_ip(i)``, which its source
    (``host(i)``) gives too: everything in sync."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    arns = []
    for i in range(GROUPS):
        arn = elbv2.create_target_group(Name=f"g{i:02d}", Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": old_ip(i), "Port": PORT}])
        dns_server.zone.set_a(host(i), old_ip(i))
        arns.append(arn)
    return arns


def config(dns_server: LoopbackDnsServer, **settings: Any) -> Config:
    bindings = tuple(Binding(f"g{i:02d}", DnsSourceSpec(host(i)), f"g{i:02d}", PORT) for i in range(GROUPS))
    base = Settings(nameservers=(dns_server.address,), dns_timeout_s=0.5, poll_interval_s=0.05, controller_id=MINE)
    return Config(bindings, base.merged(settings))


def one_pass(cfg: Config, elbv2: Any, ec2: Any, dynamodb: Any = None) -> dict[str, Any]:
    """One pass with this process's caches (a warm instance); results by binding name."""
    sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s), None)
    report: SyncReport = sync(cfg, target_groups=TargetGroups(elbv2, ec2, dynamodb=dynamodb), sources=sources)
    return {r.name: r for r in report.bindings}


def move_all(dns_server: LoopbackDnsServer) -> None:
    for i in range(GROUPS):
        dns_server.zone.set_a(host(i), new_ip(i))


def tag_calls(log: CallLog) -> list[list[str]]:
    return [list(params["ResourceArns"]) for params in log.of("DescribeTags")]


@pytest.fixture
def in_sync_instance(groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any) -> Config:
    """A new instance's first pass, in sync: it cached every group's description, and read
    no tags."""
    nlb.clear_caches()
    cfg = config(dns_server)
    log = CallLog(elbv2)
    first = one_pass(cfg, elbv2, ec2)
    assert {r.status for r in first.values()} == {"in_sync"}
    assert "DescribeTags" not in log.names()
    return cfg


class Hook:
    """Runs ``act`` on the DescribeTags calls whose ARNs satisfy ``when``: stands in for
    what AWS (or another stack) does at that moment. Thread-safe: tag calls run in
    parallel."""

    def __init__(self, elbv2: Any, event: str, act: Any) -> None:
        self.lock = threading.Lock()
        self.act = act
        elbv2.meta.events.register(f"{event}.elastic-load-balancing-v2.DescribeTags", self)

    def __call__(self, **kwargs: Any) -> Any:
        with self.lock:
            return self.act(**kwargs)


def test_the_groups_a_pass_writes_have_their_tags_read_20_a_call_and_again_on_the_next_write(
    in_sync_instance: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    move_all(dns_server)
    log = CallLog(elbv2)
    first_write = one_pass(in_sync_instance, elbv2, ec2)

    assert {r.status for r in first_write.values()} == {"changed"}
    assert all(registered(elbv2, arn) == {Target(new_ip(i), PORT)} for i, arn in enumerate(groups))
    calls = tag_calls(log)
    assert sorted(len(c) for c in calls) == [5, 20, 20]
    assert sorted(arn for c in calls for arn in c) == sorted(groups)
    # This instance's first write to each group reads its attributes, one call a group.
    assert len(log.of("DescribeTargetGroupAttributes")) == GROUPS

    log.clear()
    in_sync = one_pass(in_sync_instance, elbv2, ec2)
    assert {r.status for r in in_sync.values()} == {"in_sync"}
    assert "DescribeTags" not in log.names() and "DescribeTargetGroupAttributes" not in log.names()

    for i in range(GROUPS):
        dns_server.zone.set_a(host(i), old_ip(i))
    log.clear()
    second_write = one_pass(in_sync_instance, elbv2, ec2)
    assert {r.status for r in second_write.values()} == {"changed"}
    # Tags again, batched; the attributes stay cached.
    assert sorted(len(c) for c in tag_calls(log)) == [5, 20, 20]
    assert "DescribeTargetGroupAttributes" not in log.names()


def test_a_group_another_stack_owns_found_in_a_batch_is_not_written(
    in_sync_instance: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    theirs, ours = groups[7], groups[30]
    elbv2.add_tags(ResourceArns=[theirs], Tags=[{"Key": OWNER_TAG, "Value": "orders-external"}])
    elbv2.add_tags(ResourceArns=[ours], Tags=[{"Key": OWNER_TAG, "Value": MINE}])
    move_all(dns_server)
    log = CallLog(elbv2)

    results = one_pass(in_sync_instance, elbv2, ec2)

    assert any(theirs in c and len(c) == DESCRIBE_TAGS_CHUNK for c in tag_calls(log))
    refused = results["g07"]
    assert refused.status == "error"
    assert "orders-external" in (refused.error or "") and OWNER_TAG in (refused.error or "")
    assert registered(elbv2, theirs) == {Target(old_ip(7), PORT)}
    assert all(not any(t.ip == old_ip(7) for t in targets) for _, targets in log.writes() if targets)
    assert results["g30"].status == "changed" and registered(elbv2, ours) == {Target(new_ip(30), PORT)}
    others = [name for name in results if name != "g07"]
    assert all(results[name].status == "changed" for name in others)


def test_a_batch_that_is_throttled_writes_none_of_its_groups_and_loses_nothing(
    in_sync_instance: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    throttled: list[list[str]] = []

    def throttle(params: Any, **_: Any) -> Any:
        arns = [v for k, v in params["body"].items() if k.startswith("ResourceArns.member.")]
        if groups[25] in arns and not throttled:
            throttled.append(arns)
            error = {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
            return AWSResponse("https://elasticloadbalancing.amazonaws.com/", 400, {}, None), error
        return None

    Hook(elbv2, "before-call", throttle)
    move_all(dns_server)

    results = one_pass(in_sync_instance, elbv2, ec2)

    (batch,) = throttled
    assert len(batch) == DESCRIBE_TAGS_CHUNK
    for i, arn in enumerate(groups):
        r = results[f"g{i:02d}"]
        if arn in batch:
            assert r.status == "error" and "Throttling" in (r.error or "") and "nothing is written" in (r.error or "")
            assert registered(elbv2, arn) == {Target(old_ip(i), PORT)}  # holds what it held
        else:
            assert r.status == "changed" and registered(elbv2, arn) == {Target(new_ip(i), PORT)}

    # The next pass reads their tags again and writes them.
    again = one_pass(in_sync_instance, elbv2, ec2)
    assert all(registered(elbv2, arn) == {Target(new_ip(i), PORT)} for i, arn in enumerate(groups))
    assert {again[f"g{i:02d}"].status for i, arn in enumerate(groups) if arn in batch} == {"changed"}


def test_a_group_deleted_before_its_batch_is_read_fails_alone(
    in_sync_instance: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    admin = boto3.client("elbv2", region_name=REGION)
    deleted = groups[5]

    def delete_once(**_: Any) -> None:
        if not getattr(delete_once, "done", False):
            delete_once.done = True  # type: ignore[attr-defined]
            admin.deregister_targets(TargetGroupArn=deleted, Targets=[{"Id": old_ip(5), "Port": PORT}])
            admin.delete_target_group(TargetGroupArn=deleted)

    Hook(elbv2, "before-call", delete_once)
    move_all(dns_server)
    log = CallLog(elbv2)

    results = one_pass(in_sync_instance, elbv2, ec2)

    # Its batch of 20 was refused as a whole, then read one group a call.
    calls = tag_calls(log)
    assert any(deleted in c and len(c) == DESCRIBE_TAGS_CHUNK for c in calls)
    assert [deleted] in calls
    gone = results["g05"]
    assert gone.status == "error" and "TargetGroupNotFound" in (gone.error or "")
    assert all(results[f"g{i:02d}"].status == "changed" for i in range(GROUPS) if i != 5)
    assert all(registered(elbv2, arn) == {Target(new_ip(i), PORT)} for i, arn in enumerate(groups) if i != 5)


def test_a_group_the_answer_leaves_out_is_not_written(
    in_sync_instance: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    left_out = groups[12]

    def drop(parsed: Any, **_: Any) -> None:
        parsed["TagDescriptions"] = [d for d in parsed.get("TagDescriptions", []) if d.get("ResourceArn") != left_out]

    Hook(elbv2, "after-call", drop)
    move_all(dns_server)

    results = one_pass(in_sync_instance, elbv2, ec2)

    r = results["g12"]
    assert r.status == "error" and "answered without this target group" in (r.error or "")
    assert registered(elbv2, left_out) == {Target(old_ip(12), PORT)}
    assert all(results[f"g{i:02d}"].status == "changed" for i in range(GROUPS) if i != 12)


def test_a_group_tagged_by_another_stack_after_it_was_cached_is_not_written_on_the_next_pass(
    in_sync_instance: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    move_all(dns_server)
    written = one_pass(in_sync_instance, elbv2, ec2)
    assert {r.status for r in written.values()} == {"changed"}
    assert nlb.TargetGroups(elbv2).info(groups[3], vpc=False).owner is None  # cached: no owner

    elbv2.add_tags(ResourceArns=[groups[3]], Tags=[{"Key": OWNER_TAG, "Value": "orders-external"}])
    for i in range(GROUPS):
        dns_server.zone.set_a(host(i), old_ip(i))
    results = one_pass(in_sync_instance, elbv2, ec2)

    refused = results["g03"]
    assert refused.status == "error" and "orders-external" in (refused.error or "")
    assert registered(elbv2, groups[3]) == {Target(new_ip(3), PORT)}
    assert all(results[f"g{i:02d}"].status == "changed" for i in range(GROUPS) if i != 3)


def test_a_lock_table_tagged_after_the_group_was_cached_puts_the_next_write_under_the_lease(
    in_sync_instance: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any, dynamodb: Any
) -> None:
    move_all(dns_server)
    assert {r.status for r in one_pass(in_sync_instance, elbv2, ec2, dynamodb).values()} == {"changed"}

    dynamodb.create_table(
        TableName="orders-locks", KeySchema=[{"AttributeName": "lease_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "lease_key", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    elbv2.add_tags(ResourceArns=[groups[9]], Tags=[{"Key": LOCK_TABLE_TAG, "Value": "orders-locks"}])
    for i in range(GROUPS):
        dns_server.zone.set_a(host(i), old_ip(i))
    results = one_pass(in_sync_instance, elbv2, ec2, dynamodb)

    assert results["g09"].status == "changed"
    assert registered(elbv2, groups[9]) == {Target(old_ip(9), PORT)}
    item = dynamodb.get_item(TableName="orders-locks", Key={"lease_key": {"S": groups[9]}})["Item"]
    assert item["last_controller"] == {"S": MINE}
    assert item["last_desired"] == {"L": [{"S": str(Target(old_ip(9), PORT))}]}



def test_attributes_that_cannot_be_read_stop_no_write_and_are_read_again_next_time(
    in_sync_instance: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    def deny(params: Any, **_: Any) -> Any:
        if params["body"].get("TargetGroupArn") == groups[4]:
            error = {"Error": {"Code": "AccessDenied", "Message": "not allowed"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
            return AWSResponse("https://elasticloadbalancing.amazonaws.com/", 403, {}, None), error
        return None

    elbv2.meta.events.register("before-call.elastic-load-balancing-v2.DescribeTargetGroupAttributes", deny)
    move_all(dns_server)

    results = one_pass(in_sync_instance, elbv2, ec2)

    denied, read = results["g04"], results["g05"]
    assert denied.status == "changed" and registered(elbv2, groups[4]) == {Target(new_ip(4), PORT)}
    assert any("attributes" in w and "AccessDenied" in w for w in denied.warnings)
    # Settings it could not see are not reported as risky; those it saw are (moto's defaults).
    assert not any("connection_termination" in w for w in denied.warnings)
    assert any("connection_termination" in w for w in read.warnings)

    elbv2.meta.events.unregister("before-call.elastic-load-balancing-v2.DescribeTargetGroupAttributes", deny)
    for i in range(GROUPS):
        dns_server.zone.set_a(host(i), old_ip(i))
    log = CallLog(elbv2)
    again = one_pass(in_sync_instance, elbv2, ec2)
    assert again["g04"].status == "changed"
    assert [c["TargetGroupArn"] for c in log.of("DescribeTargetGroupAttributes")] == [groups[4]]
    assert any("connection_termination" in w for w in again["g04"].warnings)


@pytest.fixture
def few_groups(elbv2: Any, ec2: Any) -> Iterator[list[str]]:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    yield [
        elbv2.create_target_group(Name=f"t{i:02d}", Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        for i in range(MAX_RESOURCE_ARNS + 1)
    ]


def test_the_sandbox_refuses_more_than_20_arns_and_a_deleted_group_as_aws_does(elbv2: Any, few_groups: list[str]) -> None:
    assert len(elbv2.describe_tags(ResourceArns=few_groups[:MAX_RESOURCE_ARNS])["TagDescriptions"]) == MAX_RESOURCE_ARNS

    with pytest.raises(ClientError) as too_many:
        elbv2.describe_tags(ResourceArns=few_groups)
    assert too_many.value.response["Error"]["Code"] == "ValidationError"

    elbv2.delete_target_group(TargetGroupArn=few_groups[0])
    with pytest.raises(ClientError) as gone:
        elbv2.describe_tags(ResourceArns=few_groups[:3])
    assert gone.value.response["Error"]["Code"] == "TargetGroupNotFound"


def test_tags_are_read_20_groups_a_call_for_any_number_of_groups(elbv2: Any, few_groups: list[str]) -> None:
    elbv2.add_tags(ResourceArns=[few_groups[20]], Tags=[{"Key": OWNER_TAG, "Value": "other"}])
    target_groups = TargetGroups(elbv2)
    infos = [target_groups.info(arn, vpc=False, details=False) for arn in few_groups]
    log = CallLog(elbv2)

    fresh = target_groups.with_fresh_tags(infos, limit=4)

    assert sorted(len(c) for c in tag_calls(log)) == [1, 20]
    assert [i.arn for i in fresh] == few_groups
    assert all(i.tags_error is None and i.details_known for i in fresh)
    assert [i.owner for i in fresh] == [None] * 20 + ["other"]
