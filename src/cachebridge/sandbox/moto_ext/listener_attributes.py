"""Listener attributes: moto 5.2.1's ``AWS::ElasticLoadBalancingV2::Listener`` ignores
``ListenerAttributes``, and its ModifyListenerAttributes takes any key and value.

cachebridge's template sets ``tcp.idle_timeout.seconds`` on a TCP listener, so a stack in
the sandbox must hold it as a stack on AWS does. AWS's documentation: "Enter a value for
TCP idle timeout from 60-6000 seconds", "The default idle timeout value for TCP flows is
350 seconds", and "The connection idle timeout for TLS listeners is 350 seconds and can't
be modified" (ELB User Guide for Network Load Balancers, "Update the TCP idle timeout").
The error AWS returns for a value it refuses is not documented; this module answers
``ValidationError`` with a sentence naming the rule.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install", "installed", "TCP_IDLE_TIMEOUT_KEY", "TCP_IDLE_TIMEOUT_RANGE"]

TCP_IDLE_TIMEOUT_KEY = "tcp.idle_timeout.seconds"
TCP_IDLE_TIMEOUT_RANGE = (60, 6000)
_MARK = "_cachebridge_listener_attributes_ext"


def install() -> None:
    from moto.elbv2.models import ELBv2Backend, FakeListener

    if getattr(FakeListener, _MARK, False):
        return
    original_modify = ELBv2Backend.modify_listener_attributes
    original_from_cfn = FakeListener.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def modify_listener_attributes(self: Any, listener_arn: str, attrs: list[dict[str, str]]) -> dict[str, str]:
        listener = self.describe_listeners(load_balancer_arn=None, listener_arns=[listener_arn])[0]
        _check(listener.protocol, attrs)
        return original_modify(self, listener_arn, attrs)

    def listener_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        from moto.elbv2.models import elbv2_backends

        attributes = [
            {"Key": str(a["Key"]), "Value": str(a["Value"])}
            for a in cloudformation_json.get("Properties", {}).get("ListenerAttributes") or []
        ]
        _check(cloudformation_json.get("Properties", {}).get("Protocol"), attributes)
        listener = original_from_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        if attributes:
            elbv2_backends[account_id][region_name].modify_listener_attributes(listener.arn, attributes)
        return listener

    ELBv2Backend.modify_listener_attributes = modify_listener_attributes  # type: ignore[method-assign]
    FakeListener.create_from_cloudformation_json = classmethod(listener_from_cfn)  # type: ignore[method-assign,assignment]
    setattr(FakeListener, _MARK, True)


def installed() -> bool:
    from moto.elbv2.models import FakeListener

    return bool(getattr(FakeListener, _MARK, False))


def _check(protocol: str | None, attrs: list[dict[str, str]]) -> None:
    from moto.elbv2.exceptions import ELBClientError

    for attr in attrs:
        if attr.get("Key") != TCP_IDLE_TIMEOUT_KEY:
            continue
        if protocol != "TCP":
            raise ELBClientError("ValidationError", f"{TCP_IDLE_TIMEOUT_KEY} applies to TCP listeners only, not {protocol}")
        low, high = TCP_IDLE_TIMEOUT_RANGE
        value = str(attr.get("Value", ""))
        if not value.isdigit() or not low <= int(value) <= high:
            raise ELBClientError("ValidationError", f"{TCP_IDLE_TIMEOUT_KEY} must be {low}-{high} seconds, not {value!r}")
