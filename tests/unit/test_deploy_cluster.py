"""deploy on a cluster-mode-enabled group: the cluster layout by default, sizes from the
group, clear refusals."""

from __future__ import annotations

from dataclasses import replace

import boto3
import pytest
from moto import mock_aws

from cachebridge.deploy import template
from cachebridge.deploy.stack import CacheFacts, DeployRequest, effective_layout, read_cache, stack_parameters
from cachebridge.errors import ConfigError
from cachebridge.sandbox import moto_ext

REQUEST = DeployRequest(
    stack_name="sessions-external",
    replication_group_id="sessions",
    vpc_id="vpc-0a1b2c3d4e5f60718",
    subnet_ids=("subnet-0a1b2c3d4e5f60711", "subnet-0a1b2c3d4e5f60722"),
    allowed_cidrs=("203.0.113.0/24",),
)
MEMBERS = tuple(f"sessions-000{s}-00{m}" for s in (1, 2, 3) for m in (1, 2))
CLUSTER = CacheFacts("sessions", 6379, False, ("sg-0a1b2c3d4e5f60733",), None, False, MEMBERS, cluster_enabled=True)
PLAIN = replace(CLUSTER, members=("orders-001", "orders-002"), cluster_enabled=False)


def test_a_cluster_mode_group_gets_the_cluster_layout_with_room_to_grow() -> None:
    slots = template.node_slots_for(len(MEMBERS))
    values = stack_parameters(REQUEST, CLUSTER, "bucket-name", "key")
    assert values["Layout"] == "cluster"
    assert slots == len(MEMBERS) + template.NODE_SLOT_HEADROOM
    assert values["NodePorts"].split(",") == [str(p) for p in range(6381, 6381 + slots)]
    assert template.validate_parameters(values, template=template.build(node_slots=slots)) == []


def test_layouts_that_do_not_fit_the_mode_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        effective_layout(replace(REQUEST, layout="switch"), CLUSTER)
    assert info.value.field == "--layout" and "--layout cluster" in str(info.value)
    with pytest.raises(ConfigError, match="cluster mode disabled"):
        effective_layout(replace(REQUEST, layout="cluster"), PLAIN)
    assert effective_layout(REQUEST, PLAIN) == "switch"
    assert effective_layout(replace(REQUEST, layout="cluster"), CLUSTER) == "cluster"


@pytest.fixture
def elasticache(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    moto_ext.install()
    with mock_aws():
        yield boto3.client("elasticache", region_name="us-east-1")


def test_read_cache_reads_a_cluster_mode_group(elasticache) -> None:  # type: ignore[no-untyped-def]
    elasticache.create_replication_group(
        ReplicationGroupId="sessions", ReplicationGroupDescription="s", Engine="redis", ClusterMode="enabled",
        NumNodeGroups=3, ReplicasPerNodeGroup=1, Port=6390,
    )
    facts = read_cache(elasticache, "sessions")
    assert facts.cluster_enabled and facts.members == MEMBERS and facts.port == 6390


def test_a_cluster_too_big_for_one_nlb_is_refused_with_what_to_do(elasticache) -> None:  # type: ignore[no-untyped-def]
    elasticache.create_replication_group(
        ReplicationGroupId="sessions", ReplicationGroupDescription="s", Engine="redis", ClusterMode="enabled",
        NumNodeGroups=17, ReplicasPerNodeGroup=2,
    )
    with pytest.raises(ConfigError) as info:
        read_cache(elasticache, "sessions")
    assert info.value.field == "--replication-group"
    assert "51 nodes" in str(info.value) and "50 listeners" in str(info.value) and "fewer replicas per shard" in str(info.value)
