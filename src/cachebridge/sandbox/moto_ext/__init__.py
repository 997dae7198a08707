"""cachebridge's extensions to moto's backends: the one place where moto is patched.

Tests install them in-process (``mock_aws``); the sandbox installs them in the process that
runs moto server. Each module patches one concern, says which moto 5.2.x gap it closes and
why cachebridge needs it closed. ``install()`` applies every module and is idempotent.

Modules:

- ``elbv2``: target groups key targets by (IP, port), record ``AvailabilityZone``, take
  their health from a pluggable provider (moto says ``healthy`` for everything) and list
  the targets the sandbox's data plane still drains (moto forgets them at once), and tell
  an observer of each registration and deregistration as it lands.
- ``elasticache``: ``failover_replication_group`` swaps ``CurrentRole`` (moto never
  promotes a replica), ``TestFailover`` (not in moto) runs the sandbox's failover hook,
  and ``DescribeCacheClusters`` / ``ModifyReplicationGroup`` answer for replication group
  members as ``cachebridge deploy`` needs (moto has no member clusters, no security groups
  or notification topic on a cluster, and no ModifyReplicationGroup).
- ``cloudformation``: stack operations as ``cachebridge deploy`` uses them: resource
  events, failures with reasons, rollback, change sets that update outputs and honour
  ``Condition``, deletes that remove everything or say what they left behind.
- ``cfn_resources``: the template's resource types where moto gets them wrong (NLB
  ``Type``, target group attributes, security group rules, deletes moto lacks, a rule
  name already taken) and the ones it does not model (SNS subscriptions, CloudWatch
  alarms).
- ``listener_attributes``: ``ListenerAttributes`` of a listener in a stack (moto ignores
  them) and the documented limits of ``tcp.idle_timeout.seconds``.
- ``sns``: a new topic's default access policy conditions on ``aws:SourceAccount``, as
  AWS's does now (moto still writes the old ``AWS:SourceOwner`` default).
- ``transactions``: ``TransactWriteItems`` copies each table it touches once per call, not
  once per item (moto's copies made a 100-item transaction cost seconds).
- ``update_expressions``: a DynamoDB update expression is parsed once per expression
  string, not once per item and use (moto re-parsed the lease transactions' shared
  expression 200 times a call).
- ``update_validation``: an update expression's checks that read no item (clause counts,
  overlapping paths, key attributes) run once per expression, names and table, and the
  validator copies the parsed tree with a copier for such trees; the checks that read the
  item and the values still run per item.
- ``condition_expressions``: a condition expression is split into tokens once per string,
  and parsed once per (expression, names, values), not three times per transaction item;
  it is still evaluated against the stored item every time.
- ``attribute_values``: a DynamoDB answer's scalar attribute values (S, N, BOOL, NULL) are
  written out directly rather than through moto's ten-member lookup each.
- ``describe_paging``: DescribeReplicationGroups refuses a ``MaxRecords`` outside AWS's
  20 to 100 (moto pages with any).
- ``describe_tags``: ELBv2 DescribeTags refuses more than 20 ARNs, and a target group that
  does not exist fails the call (moto answers any number, and "no tags" for an unknown
  group).
- ``atomic``: DynamoDB conditional writes served one at a time, and elbv2 target
  reads/writes one at a time per target group, as AWS serves them atomically (moto checks
  a condition, then writes, unlocked).
"""

from __future__ import annotations

import threading

from . import (
    atomic,
    attribute_values,
    cfn_resources,
    cloudformation,
    condition_expressions,
    describe_paging,
    describe_tags,
    elasticache,
    elbv2,
    listener_attributes,
    sns,
    transactions,
    update_expressions,
    update_validation,
)
from .cloudformation import stack_events_recorded
from .elasticache import TestFailoverHook, failover_replication_group, set_test_failover_hook
from .elbv2 import (
    DrainingProvider,
    HealthProvider,
    HealthReport,
    TargetKey,
    health_provider,
    registered_targets,
    set_draining_provider,
    set_health_provider,
    set_membership_observer,
)

__all__ = [
    "install",
    "installed",
    "HealthReport",
    "HealthProvider",
    "set_health_provider",
    "health_provider",
    "registered_targets",
    "failover_replication_group",
    "stack_events_recorded",
    "set_draining_provider",
    "set_membership_observer",
    "set_test_failover_hook",
]

_MODULES = (elbv2, cloudformation, cfn_resources, elasticache, listener_attributes, sns, describe_paging, describe_tags, transactions, update_expressions, update_validation, condition_expressions, attribute_values, atomic)  # atomic wraps elbv2's and transactions' patches
_install_lock = threading.Lock()


def install() -> None:
    """Apply every extension. Safe to call any number of times, from any thread."""
    with _install_lock:
        for module in _MODULES:
            module.install()


def installed() -> bool:
    return all(module.installed() for module in _MODULES)
