"""Where a drill points: the sandbox (from its state) or a deployed stack (from its outputs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["DrillTarget", "resolve_target"]


@dataclass
class DrillTarget:
    host: str
    port: int
    elbv2: Any
    target_group_arn: str
    trigger: Callable[[], None]
    kind: str
    deregistration_delay_s: float
    events: Callable[[], list[dict[str, Any]]] = field(default=lambda: [])


def _delay(elbv2: Any, arn: str) -> float:
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
        arn = outputs["TargetGroupArn"]
        return DrillTarget(
            host=url.hostname or outputs["LoadBalancerDnsName"], port=url.port or 6379, elbv2=elbv2, target_group_arn=arn,
            trigger=lambda: elasticache.test_failover(ReplicationGroupId=rg, NodeGroupId="0001"),
            kind="planned", deregistration_delay_s=_delay(elbv2, arn),
        )

    from .control import control, events, read_state

    state = read_state(state_dir)
    if state is None:
        raise RuntimeError(f"no sandbox is running (nothing in {state_dir}); start one with 'cachebridge sandbox up'")
    session = boto3.session.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=state["region"])
    elbv2 = session.client("elbv2", endpoint_url=state["aws_endpoint_url"])
    elasticache = session.client("elasticache", endpoint_url=state["aws_endpoint_url"])
    arn = state["target_group_arn"]
    rg = state["replication_group"]
    if kill_primary:
        trigger: Callable[[], None] = lambda: control(state, "/kill-primary", method="POST")
    else:
        trigger = lambda: elasticache.test_failover(ReplicationGroupId=rg, NodeGroupId="0001")
    return DrillTarget(
        host=state["nlb"]["host"], port=int(state["nlb"]["port"]), elbv2=elbv2, target_group_arn=arn,
        trigger=trigger, kind="unplanned" if kill_primary else "planned",
        deregistration_delay_s=_delay(elbv2, arn), events=lambda: events(state),
    )
