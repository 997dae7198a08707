"""elasticache replication groups: failover, ``TestFailover``, and what ``cachebridge deploy``
reads and writes.

Failover. moto 5.2.1 models neither ``TestFailover`` nor the promotion of a replica: the
member created as ``<rg>-001`` reports ``CurrentRole: primary`` for ever. The elasticache://
source follows ``CurrentRole`` (DESIGN.md: DescribeReplicationGroups gives each member's
role), so tests and drills need a way to swap roles: ``failover_replication_group`` is a
verb on moto's in-process backend state, not a patch. Node names (``ReadEndpoint.Address``)
keep their values, as on AWS; which address a name resolves to is the DNS zone's business
(``sandbox.dns``).

TestFailover. The sandbox installs a hook that runs a real failover on its redis-server
nodes (``sandbox.failover``); without a hook the call promotes the first replica in moto's
state only, so the elasticache source still sees the role change.

Deploy. ``deploy`` reads a replication group's security groups and notification topic from
``DescribeCacheClusters`` of a member (``DescribeReplicationGroups`` has neither), and sets
the topic with ``ModifyReplicationGroup``. In moto 5.2.1 the members of a replication group
are not cache clusters (``DescribeCacheClusters`` says ``CacheClusterNotFound`` for
``<rg>-001``), a cache cluster reports neither ``SecurityGroups`` nor
``NotificationConfiguration``, and ``ModifyReplicationGroup`` does not exist. So:

- ``DescribeCacheClusters`` for a member answers with a view of that member built from its
  replication group (a cache cluster created explicitly under that id wins);
- cache clusters report ``SecurityGroups`` and ``NotificationConfiguration``;
- ``ModifyReplicationGroup`` changes the notification settings only
  (``NotificationTopicArn``, ``NotificationTopicStatus``, ``ApplyImmediately``); any other
  change is refused with ``InvalidParameterCombination`` rather than ignored.

Cluster mode. moto 5.2.1 creates the node groups (shards) and members of a
cluster-mode-enabled group, but its members have no node endpoint anywhere, and nothing
changes the topology afterwards. On AWS a member's ``ReadEndpoint`` and ``CurrentRole`` are
"only applicable for ... (cluster mode disabled)" (API Reference, ``NodeGroupMember``); the
node's address is the cache cluster's ``CacheNodes[].Endpoint`` from
``DescribeCacheClusters`` with ``ShowCacheNodeInfo``. So:

- a cluster-mode member's cache cluster view carries one cache node, ``0001``, whose
  endpoint is ``<CacheClusterId>.<the group's domain>`` on the group's port (the form AWS
  gives node names), whether or not ``ShowCacheNodeInfo`` is set (the docs say it is
  returned only when it is; the extension does not model the flag);
- ``set_cluster_topology`` replaces a cluster-mode group's node groups and members (scale
  out/in, a replaced node), slots spread evenly over the node groups as
  ``CreateReplicationGroup`` does when none are given. Roles are not modelled: AWS reports
  none in cluster mode, and the sandbox's failovers happen in its redis-server nodes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "TestFailoverHook",
    "failover_replication_group",
    "set_cluster_topology",
    "node_address",
    "set_test_failover_hook",
    "install",
    "installed",
]

_DEPLOY_MARK = "_cachebridge_deploy_ext"
_TEST_FAILOVER_MARK = "_cachebridge_sandbox_ext"


# -- failover --------------------------------------------------------------------------------


def failover_replication_group(account_id: str, region: str, rg_id: str, new_primary_cluster_id: str) -> tuple[str, ...]:
    """Make member ``new_primary_cluster_id`` the primary of replication group ``rg_id``
    (cluster mode disabled) and every other member a replica, as a completed failover
    leaves it. Returns the cluster ids that were primary before.

    The member list is replaced in one assignment, so a concurrent DescribeReplicationGroups
    (moto server serves requests on threads) sees the old roles or the new ones, never a mix.
    Raises ``ValueError`` for an unknown group or member, or a cluster-mode-enabled group.
    """
    from moto.elasticache.models import elasticache_backends

    backend = elasticache_backends[account_id][region]
    group = backend.replication_groups.get(rg_id)
    if group is None:
        raise ValueError(f"no replication group {rg_id!r} in moto's elasticache backend ({account_id}, {region})")
    if getattr(group, "cluster_mode", "disabled") == "enabled":
        raise ValueError(f"replication group {rg_id!r} has cluster mode enabled; only cluster-mode-disabled failover is modelled")
    node_groups = group.node_groups
    members = [m for ng in node_groups for m in ng["node_group_members"]]
    ids = [m["cache_cluster_id"] for m in members]
    if new_primary_cluster_id not in ids:
        raise ValueError(f"replication group {rg_id!r} has no member {new_primary_cluster_id!r} (members: {', '.join(ids)})")
    previous = tuple(m["cache_cluster_id"] for m in members if m.get("current_role") == "primary")
    for ng in node_groups:
        ng["node_group_members"] = [
            {**m, "current_role": "primary" if m["cache_cluster_id"] == new_primary_cluster_id else "replica"}
            for m in ng["node_group_members"]
        ]
    return previous


# -- cluster mode ----------------------------------------------------------------------------

_SLOTS = 16384


def node_address(group: Any, cache_cluster_id: str) -> str:
    """A cluster-mode node's name: ``<CacheClusterId>.<the group's domain>``."""
    config = getattr(group, "configuration_endpoint", None) or {}
    domain = str(config.get("address", "")).removeprefix("clustercfg.") or f"{group.replication_group_id}.sandbox.use1.cache.amazonaws.com"
    return f"{cache_cluster_id}.{domain}"


def set_cluster_topology(account_id: str, region: str, rg_id: str, shards: dict[str, list[str]]) -> None:
    """Make cluster-mode group ``rg_id`` hold exactly ``shards`` (node group id -> member
    cache cluster ids, in order), slots spread evenly. Replaced in one assignment, so a
    concurrent DescribeReplicationGroups sees the old topology or the new one.
    Raises ``ValueError`` for an unknown or cluster-mode-disabled group, or an empty shard."""
    from moto.elasticache.models import elasticache_backends

    backend = elasticache_backends[account_id][region]
    group = backend.replication_groups.get(rg_id)
    if group is None:
        raise ValueError(f"no replication group {rg_id!r} in moto's elasticache backend ({account_id}, {region})")
    if getattr(group, "cluster_mode", "disabled") != "enabled":
        raise ValueError(f"replication group {rg_id!r} has cluster mode disabled")
    if not shards or any(not members for members in shards.values()):
        raise ValueError("every node group needs at least one member")
    count = len(shards)
    node_groups = []
    for i, (ng_id, members) in enumerate(shards.items()):
        low, high = i * _SLOTS // count, (i + 1) * _SLOTS // count - 1
        node_groups.append({
            "node_group_id": ng_id,
            "status": "available",
            "slots": f"{low}-{high}",
            "node_group_members": [
                {"cache_cluster_id": m, "cache_node_id": "0001", "preferred_availability_zone": "us-east-1a" if j == 0 else "us-east-1b"}
                for j, m in enumerate(members)
            ],
        })
    group.node_groups = node_groups
    group.member_clusters = [m for members in shards.values() for m in members]


# -- TestFailover ----------------------------------------------------------------------------


TestFailoverHook = Callable[[str, "str | None"], None]

_hook_lock = threading.Lock()
_test_failover_hook: TestFailoverHook | None = None


def set_test_failover_hook(hook: TestFailoverHook | None) -> TestFailoverHook | None:
    """``hook(replication_group_id, node_group_id)`` starts a failover; it may raise
    ``LookupError`` for a group it does not run."""
    global _test_failover_hook
    with _hook_lock:
        previous, _test_failover_hook = _test_failover_hook, hook
    return previous


def _test_failover(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.elasticache.exceptions import InvalidParameterValueException

    rg_id = self._get_param("ReplicationGroupId")
    node_group_id = self._get_param("NodeGroupId")
    backend = self.elasticache_backend
    group = backend.describe_replication_groups(rg_id)[0]  # raises ReplicationGroupNotFound
    hook = _test_failover_hook
    try:
        if hook is None:
            raise LookupError(rg_id)
        hook(rg_id, node_group_id)
    except LookupError:
        members = group.node_groups[0]["node_group_members"]
        replica = next((m for m in members if m.get("current_role") == "replica"), None)
        if replica is None:
            raise InvalidParameterValueException(f"Replication group {rg_id} has no replica to fail over to") from None
        failover_replication_group(self.current_account, self.region, rg_id, replica["cache_cluster_id"])
    except RuntimeError as exc:
        raise InvalidParameterValueException(str(exc)) from None
    return ActionResult({"ReplicationGroup": group})


# -- deploy: member clusters and ModifyReplicationGroup --------------------------------------


_MODIFIABLE = frozenset({"ReplicationGroupId", "NotificationTopicArn", "NotificationTopicStatus", "ApplyImmediately"})


class _MemberCluster:
    """A replication group member as DescribeCacheClusters shows it."""

    def __init__(self, group: Any, member: dict[str, Any], region_name: str, account_id: str) -> None:
        self.cache_cluster_id = member["cache_cluster_id"]
        self.replication_group_id = group.replication_group_id
        self.cache_node_type = group.cache_node_type
        self.engine = group.engine
        self.engine_version = group.engine_version
        self.cache_cluster_status = group.status
        self.num_cache_nodes = 1
        self.preferred_availability_zone = member.get("preferred_availability_zone")
        self.cache_cluster_create_time = group.replication_group_create_time
        self.cache_subnet_group_name = group.cache_subnet_group_name
        self.cache_parameter_group = None
        self.transit_encryption_enabled = group.transit_encryption_enabled
        self.at_rest_encryption_enabled = group.at_rest_encryption_enabled
        self.auth_token_enabled = group.auth_token_enabled
        self.snapshot_retention_limit = group.snapshot_retention_limit
        self.arn = f"arn:aws:elasticache:{region_name}:{account_id}:cluster:{self.cache_cluster_id}"
        self.security_groups = _security_groups(group)
        self.notification_configuration = _notification_configuration(group)
        if getattr(group, "cluster_mode", "disabled") == "enabled":
            self.cache_nodes = [{
                "CacheNodeId": "0001",
                "CacheNodeStatus": group.status,
                "CacheNodeCreateTime": group.replication_group_create_time,
                "Endpoint": {"Address": node_address(group, self.cache_cluster_id), "Port": group.port},
                "CustomerAvailabilityZone": member.get("preferred_availability_zone"),
            }]


def _security_groups(resource: Any) -> list[dict[str, str]]:
    return [{"SecurityGroupId": sg, "Status": "active"} for sg in resource.security_group_ids or []]


def _notification_configuration(resource: Any) -> dict[str, str] | None:
    topic = getattr(resource, "notification_topic_arn", None)
    if not topic:
        return None
    return {"TopicArn": topic, "TopicStatus": getattr(resource, "_cachebridge_topic_status", "active")}


def _install_deploy() -> None:
    from moto.core.responses import ActionResult
    from moto.elasticache import models as ec_models
    from moto.elasticache.exceptions import CacheClusterNotFound, InvalidParameterCombinationException, InvalidParameterValueException
    from moto.elasticache.responses import ElastiCacheResponse

    backend_class = ec_models.ElastiCacheBackend

    def members(backend: Any) -> dict[str, _MemberCluster]:
        views: dict[str, _MemberCluster] = {}
        for group in list(backend.replication_groups.values()):
            for node_group in group.node_groups:
                for member in node_group["node_group_members"]:
                    views[member["cache_cluster_id"]] = _MemberCluster(group, member, backend.region_name, backend.account_id)
        return views

    def describe_cache_clusters(self: Any, cache_cluster_id: str | None = None) -> list[Any]:
        views = members(self)
        if cache_cluster_id:
            if cache_cluster_id in self.cache_clusters:
                return [self.cache_clusters[cache_cluster_id]]
            if cache_cluster_id in views:
                return [views[cache_cluster_id]]
            raise CacheClusterNotFound(cache_cluster_id)
        return list(self.cache_clusters.values()) + [v for k, v in views.items() if k not in self.cache_clusters]

    def modify_replication_group(
        self: Any,
        replication_group_id: str,
        notification_topic_arn: str | None = None,
        notification_topic_status: str | None = None,
    ) -> Any:
        (group,) = self.describe_replication_groups(replication_group_id)
        if notification_topic_status not in (None, "active", "inactive"):
            raise InvalidParameterValueException(f"Invalid value for NotificationTopicStatus: {notification_topic_status}")
        if notification_topic_arn is not None:
            group.notification_topic_arn = notification_topic_arn
            group._cachebridge_topic_status = "active"
        if notification_topic_status is not None:
            group._cachebridge_topic_status = notification_topic_status
        for cluster_id in group.member_clusters:
            cluster = self.cache_clusters.get(cluster_id)
            if cluster is not None:
                cluster.notification_topic_arn = group.notification_topic_arn
                cluster._cachebridge_topic_status = getattr(group, "_cachebridge_topic_status", "active")
        return group

    def modify_replication_group_response(self: Any) -> ActionResult:
        params = self._get_params()
        unsupported = sorted(set(params) - _MODIFIABLE)
        if unsupported:
            raise InvalidParameterCombinationException(
                f"this moto extension models only the notification settings of ModifyReplicationGroup; not {', '.join(unsupported)}"
            )
        group = self.elasticache_backend.modify_replication_group(
            replication_group_id=params["ReplicationGroupId"],
            notification_topic_arn=params.get("NotificationTopicArn"),
            notification_topic_status=params.get("NotificationTopicStatus"),
        )
        return ActionResult({"ReplicationGroup": group})

    backend_class.describe_cache_clusters = describe_cache_clusters  # type: ignore[method-assign]
    backend_class.modify_replication_group = modify_replication_group  # type: ignore[attr-defined]
    ElastiCacheResponse.modify_replication_group = modify_replication_group_response  # type: ignore[attr-defined]
    ec_models.CacheCluster.security_groups = property(_security_groups)  # type: ignore[attr-defined]
    ec_models.CacheCluster.notification_configuration = property(_notification_configuration)  # type: ignore[attr-defined]


def install() -> None:
    from moto.elasticache.models import ElastiCacheBackend
    from moto.elasticache.responses import ElastiCacheResponse

    if not getattr(ElastiCacheBackend, _DEPLOY_MARK, False):
        _install_deploy()
        setattr(ElastiCacheBackend, _DEPLOY_MARK, True)
    if not getattr(ElastiCacheResponse, _TEST_FAILOVER_MARK, False):
        ElastiCacheResponse.test_failover = _test_failover  # type: ignore[attr-defined]
        setattr(ElastiCacheResponse, _TEST_FAILOVER_MARK, True)


def installed() -> bool:
    from moto.elasticache.models import ElastiCacheBackend
    from moto.elasticache.responses import ElastiCacheResponse

    return bool(getattr(ElastiCacheBackend, _DEPLOY_MARK, False) and getattr(ElastiCacheResponse, _TEST_FAILOVER_MARK, False))
