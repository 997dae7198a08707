"""The CloudFormation template of one cachebridge stack, built as a Python dict.

One stack gives applications outside the VPC a Network Load Balancer in front of the
current primary of one ElastiCache replication group (cluster mode disabled)::

    client ──TCP/TLS──► NLB (own security group: AllowedCidrs on ListenerPort only)
                         └─ listener ─► IP target group ─► current primary IP:CachePort
    ElastiCache ──SNS──► controller Lambda ◄── EventBridge schedule (safety net)

Everything is named by CloudFormation or derived from the stack name, so any number of
stacks coexist in one account and region. Nothing in it blocks deletion.

``AllowedCidrs`` takes at most ``MAX_ALLOWED_CIDRS`` IPv4 ranges (one security group rule
each, selected by Conditions). CloudFormation Rules cannot count list members, so a longer
list creates the ``AllowedCidrsLimitExceeded`` guard, a wait condition nobody signals: the
stack fails within seconds and rolls back, rather than silently ignoring the extra ranges.
A list covering more than a /8 without ``AllowAnySource=true`` fails the same way, through
``AllowedCidrsCoverMoreThanASlash8SetAllowAnySource`` (``deploy.allow_list`` says how the
Conditions count addresses, and what they cannot see).

``validate_parameters`` applies the parameter constraints, the ``Rules`` and that limit
to a set of parameter values, with the same tiny evaluator the tests use, so a caller can
refuse bad input before calling CloudFormation.

Protocols: ``ListenerProtocol`` is what clients speak to the NLB; ``TargetProtocol`` is
what the cache speaks (``TLS`` for in-transit encryption). With a TLS listener the NLB
terminates TLS with ``CertificateArn`` and, for a TLS cache, re-encrypts towards it (TLS
target group). With a TCP listener the bytes pass through unchanged, so a TLS cache is
reached end to end through a TCP target group; the connection URL is ``rediss://``
whenever the client must speak TLS.

Optional parts, each off by default and selected by a Condition:

- ``ReservedConcurrency``: 0 leaves the function unreserved. Lambda refuses a reservation
  that would leave the account's unreserved concurrency below 100 ("You can reserve up to
  the Unreserved account concurrency value minus 100", Lambda Developer Guide, "Configuring
  reserved concurrency"), which fails stack creation in new accounts with low quotas; the
  controller is safe with concurrent invocations without it.
- ``LambdaSubnetIds``: the function runs in the VPC and resolves node names through the VPC
  resolver. It then reaches the ELB, ElastiCache and EC2 APIs through an existing NAT, or
  through interface endpoints the stack creates (``CreateVpcEndpoints``).
- ``TcpIdleTimeoutSeconds``: the TCP listener's ``tcp.idle_timeout.seconds`` (60-6000,
  AWS's default 350); a TLS listener keeps its fixed 350 s.

The topic the stack creates carries ElastiCache's documented publish statement
(``"Principal": {"AWS": "*"}`` with ``AWS:SourceOwner``), see ``triggers._trigger_resources``.

Modules, each for what it holds: ``cfn`` (intrinsic functions), ``access`` (AllowedCidrs
and its guards), ``parameters`` (Parameters, Rules, Conditions), ``layouts`` (the NLB in
each layout), ``bindings`` (the controller's configuration), ``controller`` (the function
and its network), ``lock_table`` (the write lease), ``triggers`` (schedule, topic, alarms),
``document`` (``build``, ``render``), ``evaluator`` (``validate_parameters``) and
``combinations`` (``variants``).
"""

from __future__ import annotations

from .access import ANY_SOURCE, CIDR_PATTERN, MAX_ALLOWED_CIDRS, TOO_MANY_CIDRS, client_ingress_name
from .bindings import binding_name_sub, bindings_sub, cluster_bindings_sub, retarget_bindings_sub, switch_bindings_sub
from .combinations import Variant, variants
from .controller import (
    FUNCTION_MEMORY_MB,
    FUNCTION_TIMEOUT_S,
    HANDLER,
    LOG_RETENTION_DAYS,
    RUNTIME,
    VPC_ACCESS_STATEMENT,
    VPC_ENDPOINT_SERVICES,
)
from .document import build, render
from .evaluator import TemplateEvaluationError, evaluate, validate_parameters
from .layouts import (
    DEFAULT_NODE_SLOTS,
    HEALTH_CHECK_TIMEOUT_S,
    LAYOUTS,
    MAX_NODE_SLOTS,
    NODE_SLOT_HEADROOM,
    TCP_IDLE_TIMEOUT_DEFAULT_S,
    TCP_IDLE_TIMEOUT_RANGE,
    TLS_POLICY,
    node_listener_name,
    node_ports,
    node_slots_for,
    node_target_group_name,
    tcp_listener_attributes,
)
from .parameters import PARAMETER_GROUPS
from .triggers import DRIFT_NAMESPACE, SCHEDULE_RULE_NAME_MAX, SCHEDULE_RULE_SUFFIX, elasticache_publish_statement


__all__ = [
    "MAX_ALLOWED_CIDRS",
    "FUNCTION_TIMEOUT_S",
    "RUNTIME",
    "HANDLER",
    "DRIFT_NAMESPACE",
    "PARAMETER_GROUPS",
    "Variant",
    "build",
    "render",
    "variants",
    "bindings_sub",
    "client_ingress_name",
    "binding_name_sub",
    "validate_parameters",
    "evaluate",
    "TemplateEvaluationError",
    "TOO_MANY_CIDRS",
    "LAYOUTS",
    "DEFAULT_NODE_SLOTS",
    "MAX_NODE_SLOTS",
    "node_ports",
    "node_slots_for",
    "switch_bindings_sub",
    "cluster_bindings_sub",
    "retarget_bindings_sub",
    "TCP_IDLE_TIMEOUT_RANGE",
    "VPC_ENDPOINT_SERVICES",
    "elasticache_publish_statement",
    "tcp_listener_attributes",
]
