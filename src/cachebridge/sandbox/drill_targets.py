"""Where a drill points: the sandbox (from its state) or a deployed stack (from its outputs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..drill import DrillPath, forward_target

__all__ = ["DrillTarget", "resolve_target"]


@dataclass
class DrillTarget:
    host: str
    port: int
    elbv2: Any
    target_group_arn: str | None
    trigger: Callable[[], None]
    kind: str
    deregistration_delay_s: float
    events: Callable[[], list[dict[str, Any]]] = field(default=lambda: [])
    path: DrillPath = field(default_factory=DrillPath)
    # Reported with the drill's figures: the layout, and the NLB profile it ran under.
    context: dict[str, Any] = field(default_factory=dict)
    watch_period: float = 0.1


def _path(elbv2: Any, layout: str, outputs: dict[str, str], listener_port: int, nodes: int) -> DrillPath:
    """The retarget layout's target group, or the switch layout's primary listener (found by
    its port on the stack's NLB) and the node target groups its per-node listeners use."""
    if layout != "switch":
        return DrillPath("retarget", target_group_arn=outputs["TargetGroupArn"])
    dns = outputs.get("LoadBalancerDnsName")
    lbs = [lb for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb.get("DNSName") == dns]
    if not lbs:
        raise RuntimeError(f"no load balancer named {dns!r} (the stack's LoadBalancerDnsName output)")
    listeners = elbv2.describe_listeners(LoadBalancerArn=lbs[0]["LoadBalancerArn"])["Listeners"]
    by_port = {int(listener["Port"]): listener for listener in listeners}
    by_arn = {listener["ListenerArn"]: listener for listener in listeners}
    if outputs.get("PrimaryListenerArn") in by_arn:
        listener_port = int(by_arn[outputs["PrimaryListenerArn"]]["Port"])
    if listener_port not in by_port:
        raise RuntimeError(f"the stack's NLB has no listener on its primary port {listener_port}")
    node_ports = [int(p) for p in outputs.get("NodePorts", "").split(",") if p.strip()]
    node_groups = []
    for port in node_ports:
        if port in by_port and (tg := forward_target(by_port[port].get("DefaultActions", []))):
            node_groups.append(tg)
    return DrillPath("switch", listener_arn=by_port[listener_port]["ListenerArn"], node_target_groups=tuple(node_groups), nodes=nodes)


def _delay(elbv2: Any, arn: str | None) -> float:
    if arn is None:
        return 0.0
    attrs = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    return float(next((a["Value"] for a in attrs if a["Key"] == "deregistration_delay.timeout_seconds"), 300))


def resolve_target(*, state_dir: Path, stack_name: str | None, kill_primary: bool) -> DrillTarget:
    import boto3

    if stack_name:
        if kill_primary:
            raise ValueError("--kill-primary works only in the sandbox; a real stack fails over with TestFailover")
        from .. import aws  # AWS_REGION as well as AWS_DEFAULT_REGION

        cfn = aws.client("cloudformation")
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        params = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
        url = urlsplit(outputs["ConnectionUrl"])
        elbv2 = aws.client("elbv2")
        elasticache = aws.client("elasticache")
        rg = params["ReplicationGroupId"]
        layout = params.get("Layout") or "retarget"
        port = url.port or 6379
        members = 0
        if layout == "switch":  # the drill waits for every node's target group to be healthy
            group = elasticache.describe_replication_groups(ReplicationGroupId=rg)["ReplicationGroups"][0]
            members = sum(len(ng.get("NodeGroupMembers", [])) for ng in group.get("NodeGroups", []))
        path = _path(elbv2, layout, outputs, port, members)
        arn = path.target_group_arn or path.listener_arn and _forward_of(elbv2, path.listener_arn)
        return DrillTarget(
            host=url.hostname or outputs["LoadBalancerDnsName"], port=port, elbv2=elbv2, target_group_arn=path.target_group_arn,
            trigger=lambda: elasticache.test_failover(ReplicationGroupId=rg, NodeGroupId="0001"),
            kind="planned", deregistration_delay_s=_delay(elbv2, arn), path=path,
            context={"layout": layout, "nlb_profile": {"name": "aws"}},
            # DescribeTargetHealth and DescribeListeners are rate-limited on AWS.
            watch_period=0.5,
        )

    from .control import control, events, read_state

    state = read_state(state_dir)
    if state is None:
        raise RuntimeError(f"no sandbox is running (nothing in {state_dir}); start one with 'cachebridge sandbox up'")
    session = boto3.session.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=state["region"])
    elbv2 = session.client("elbv2", endpoint_url=state["aws_endpoint_url"])
    elasticache = session.client("elasticache", endpoint_url=state["aws_endpoint_url"])
    layout = state.get("layout") or "retarget"
    path = _path(elbv2, layout, state.get("outputs") or {"TargetGroupArn": state["target_group_arn"]},
                 int(state["nlb"]["port"]), len(state.get("nodes", [])))
    arn = path.target_group_arn or path.listener_arn and _forward_of(elbv2, path.listener_arn)
    rg = state["replication_group"]
    profile = state.get("nlb_profile") or {}
    if kill_primary:
        trigger: Callable[[], None] = lambda: control(state, "/kill-primary", method="POST")
    else:
        trigger = lambda: elasticache.test_failover(ReplicationGroupId=rg, NodeGroupId="0001")
    return DrillTarget(
        host=state["nlb"]["host"], port=int(state["nlb"]["port"]), elbv2=elbv2, target_group_arn=path.target_group_arn,
        trigger=trigger, kind="unplanned" if kill_primary else "planned",
        # The stand-in runs the delay scaled, and keeps routing new connections to a
        # deregistered target for the profile's lag: READONLY errors end with the later.
        deregistration_delay_s=max(_delay(elbv2, arn), profile.get("deregistration_lag_s", 0.0)) * profile.get("time_scale", 1.0),
        events=lambda: events(state), path=path,
        context={"layout": layout, "nlb_profile": state.get("nlb_profile") or {"name": "unknown"}},
    )


def _forward_of(elbv2: Any, listener_arn: str) -> str | None:
    listener = elbv2.describe_listeners(ListenerArns=[listener_arn])["Listeners"][0]
    return forward_target(listener.get("DefaultActions", []))
