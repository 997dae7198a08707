"""deploy's controller options: checked before any AWS call, and passed to the template as
the parameters it declares."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cachebridge.deploy import template
from cachebridge.deploy.stack import CacheFacts, DeployRequest, stack_parameters, validate_request
from cachebridge.errors import ConfigError

REQUEST = DeployRequest(
    stack_name="orders-external",
    replication_group_id="orders",
    vpc_id="vpc-0a1b2c3d4e5f60718",
    subnet_ids=("subnet-0a1b2c3d4e5f60711", "subnet-0a1b2c3d4e5f60722"),
    allowed_cidrs=("203.0.113.0/24",),
)
CACHE = CacheFacts("orders", 6379, False, ("sg-0a1b2c3d4e5f60733",), None, False, ("orders-001", "orders-002"))


@pytest.mark.parametrize(
    ("changes", "flag", "says"),
    [
        ({"tcp_idle_timeout_s": 59}, "--tcp-idle-timeout", "out of range"),
        ({"tcp_idle_timeout_s": 6001}, "--tcp-idle-timeout", "out of range"),
        ({"tcp_idle_timeout_s": 600, "listener_protocol": "TLS", "certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/x"},
         "--tcp-idle-timeout", "fixed at 350"),
        ({"reserved_concurrency": -1}, "--reserved-concurrency", "negative"),
        ({"lambda_subnet_ids": ("subnet-nope",)}, "--lambda-subnets", "not a subnet id"),
        ({"lambda_subnet_ids": ("subnet-0a1b2c3d4e5f60744",) * 2}, "--lambda-subnets", "twice"),
        ({"create_vpc_endpoints": True}, "--create-vpc-endpoints", "--lambda-subnets too"),
        ({"lambda_security_group_id": "sg-0a1b2c3d4e5f60799"}, "--lambda-security-group", "--lambda-subnets too"),
        ({"lambda_subnet_ids": ("subnet-0a1b2c3d4e5f60744",), "lambda_security_group_id": "sg-x"}, "--lambda-security-group", "not a security group id"),
    ],
)
def test_bad_controller_options_are_refused_before_any_call(changes, flag, says):
    with pytest.raises(ConfigError) as caught:
        validate_request(replace(REQUEST, **changes))
    assert caught.value.field == flag
    assert says in str(caught.value)


def test_defaults_leave_the_template_defaults():
    values = stack_parameters(REQUEST, CACHE, "bucket-name", "key")
    assert not {"TcpIdleTimeoutSeconds", "ReservedConcurrency", "LambdaSubnetIds", "LambdaSecurityGroupId", "CreateVpcEndpoints"} & set(values)
    assert template.validate_parameters(values) == []


def test_options_become_template_parameters():
    request = replace(
        REQUEST,
        tcp_idle_timeout_s=1200,
        reserved_concurrency=2,
        lambda_subnet_ids=("subnet-0a1b2c3d4e5f60744", "subnet-0a1b2c3d4e5f60755"),
        lambda_security_group_id="sg-0a1b2c3d4e5f60799",
        create_vpc_endpoints=True,
    )
    validate_request(request)
    values = stack_parameters(request, CACHE, "bucket-name", "key")
    assert {k: values[k] for k in ("TcpIdleTimeoutSeconds", "ReservedConcurrency", "LambdaSubnetIds", "LambdaSecurityGroupId", "CreateVpcEndpoints")} == {
        "TcpIdleTimeoutSeconds": "1200",
        "ReservedConcurrency": "2",
        "LambdaSubnetIds": "subnet-0a1b2c3d4e5f60744,subnet-0a1b2c3d4e5f60755",
        "LambdaSecurityGroupId": "sg-0a1b2c3d4e5f60799",
        "CreateVpcEndpoints": "true",
    }
    assert template.validate_parameters(values) == []
