"""The supported combinations of the parameters that shape the stack, with sample values."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ...config import DEFAULT_PORT

__all__ = ["Variant", "variants"]


@dataclass(frozen=True)
class Variant:
    """One supported combination of the parameters that shape the stack."""

    listener_protocol: str
    target_protocol: str
    scheme: str
    topic_given: bool
    # Where the function runs: "outside-vpc", "vpc" (an existing NAT or endpoints) or
    # "vpc-endpoints" (the stack creates the endpoints).
    lambda_network: str = "outside-vpc"

    @property
    def name(self) -> str:
        topic = "topic-given" if self.topic_given else "topic-created"
        network = "" if self.lambda_network == "outside-vpc" else f"-lambda-{self.lambda_network}"
        return f"{self.listener_protocol.lower()}-to-{self.target_protocol.lower()}-{self.scheme}-{topic}{network}"

    @property
    def client_speaks_tls(self) -> bool:
        return "TLS" in (self.listener_protocol, self.target_protocol)

    def parameters(self, **overrides: str) -> dict[str, str]:
        """Sample parameter values for this variant, as CloudFormation takes them
        (strings; lists comma-separated)."""
        values = {
            "VpcId": "vpc-0a1b2c3d4e5f60718",
            "SubnetIds": "subnet-0a1b2c3d4e5f60711,subnet-0a1b2c3d4e5f60722",
            "Scheme": self.scheme,
            "ReplicationGroupId": "orders",
            "CacheSecurityGroupId": "sg-0a1b2c3d4e5f60733",
            "CachePort": str(DEFAULT_PORT),
            "AllowedCidrs": "203.0.113.0/24,198.51.100.7/32",
            "AllowAnySource": "false",
            "ListenerPort": str(DEFAULT_PORT),
            "ListenerProtocol": self.listener_protocol,
            "TargetProtocol": self.target_protocol,
            "CodeBucket": "cachebridge-artifacts-123456789012-us-east-1",
            "CodeKey": "cachebridge/lambda-0123456789abcdef.zip",
        }
        if self.listener_protocol == "TLS":
            values["CertificateArn"] = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        if self.topic_given:
            values["NotificationTopicArn"] = "arn:aws:sns:us-east-1:123456789012:elasticache-orders"
        if self.lambda_network != "outside-vpc":
            values["LambdaSubnetIds"] = "subnet-0a1b2c3d4e5f60744,subnet-0a1b2c3d4e5f60755"
        if self.lambda_network == "vpc-endpoints":
            values["CreateVpcEndpoints"] = "true"
        values.update(overrides)
        return values


def variants() -> tuple[Variant, ...]:
    """Every combination the template supports: TCP/TLS listener x TCP/TLS cache x
    internet-facing/internal x notification topic given/created, with the function outside
    the VPC; plus the function in the VPC (with and without the stack's endpoints) for a
    TCP and a TLS listener, the network being independent of the rest."""
    outside = tuple(
        Variant(listener, target, scheme, topic_given)
        for listener, target, scheme, topic_given in itertools.product(
            ("TCP", "TLS"), ("TCP", "TLS"), ("internet-facing", "internal"), (True, False)
        )
    )
    in_vpc = tuple(
        Variant(listener, target, "internal", False, network)
        for (listener, target), network in itertools.product((("TCP", "TCP"), ("TLS", "TLS")), ("vpc", "vpc-endpoints"))
    )
    return outside + in_vpc
