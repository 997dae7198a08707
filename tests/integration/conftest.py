"""What the integration tests share: moto in-process with cachebridge's extensions, its
elbv2, ec2, elasticache and dynamodb clients, a log of the API calls a client makes, a DNS
server on loopback, a replication group ``orders`` whose node names that server resolves
(with the binding that routes its primary and a pass over it), and a moto server in a
process of its own (for tests whose threads must really interleave, or that put something
between the client and AWS)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import psutil
import pytest
from moto import mock_aws

from cachebridge import nlb, pacing
from cachebridge.aws import BOTO_CONFIG
from cachebridge.config import Binding, Config, ElastiCacheSourceSpec, Settings
from cachebridge.nlb import LOCK_TABLE_TAG, OWNER_TAG, TargetGroups
from cachebridge.sandbox import moto_ext
from cachebridge.sandbox.dns import DEFAULT_TTL, LoopbackDnsServer, Zone
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import SyncReport, sync
from cachebridge.targets import Target

from ..conftest import aws_server_process

# The region of the in-process moto that ``aws`` sets up.
REGION = "eu-west-1"
WRITES = ("RegisterTargets", "DeregisterTargets")


class CallLog:
    """Every API call a client makes, in order, with the parameters it was given."""

    def __init__(self, *clients: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        for client in clients:
            client.meta.events.register("before-parameter-build", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    def writes(self) -> list[tuple[str, list[Target]]]:
        return [
            (name, [Target(t["Id"], t["Port"]) for t in params["Targets"]])
            for name, params in self.calls
            if name in WRITES
        ]

    def clear(self) -> None:
        self.calls.clear()


_session: boto3.Session | None = None


def _shared_session() -> boto3.Session:
    """One boto3 session for every in-process moto test. A new session decodes botocore's
    models again for each client (0.15-0.4 s a client); one kept across tests builds a
    client in about 0.01 s. moto intercepts its clients all the same: it hooks every
    botocore session, and keeps no state in the session."""
    global _session
    if _session is None:
        _session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    return _session


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process for ``REGION``, with ``moto_ext`` installed and moto's own target
    health (no provider); cached target group details are dropped before and after.
    ``boto3.client`` builds its clients on the shared session (``_shared_session``)."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", "AWS_ENDPOINT_URL_EC2", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", _shared_session())
    moto_ext.install()
    nlb.clear_caches()
    pacing.configure(0, 1)  # a handler test configures the process's bucket: not for the next test
    previous = moto_ext.set_health_provider(None)
    try:
        with mock_aws(config={"core": {"reset_boto3_session": False}}):
            yield
    finally:
        moto_ext.set_health_provider(previous)
        nlb.clear_caches()
        pacing.configure(0, 1)


@pytest.fixture
def ec2(aws: None) -> Any:
    return boto3.client("ec2", region_name=REGION)


@pytest.fixture
def elbv2(aws: None) -> Any:
    return boto3.client("elbv2", region_name=REGION)


@pytest.fixture
def elasticache(aws: None) -> Any:
    """An ElastiCache client of the test's own: the calls a log counts on it are the sources'."""
    return boto3.client("elasticache", region_name=REGION)


@pytest.fixture
def dynamodb(aws: None) -> Any:
    return boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def zone_ttl() -> int:
    """The TTL of the loopback zone's records; a module that checks TTLs overrides it."""
    return DEFAULT_TTL


@pytest.fixture
def dns_server(zone_ttl: int) -> Iterator[LoopbackDnsServer]:
    server = LoopbackDnsServer(Zone(ttl=zone_ttl), host="127.0.0.1").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def zone(dns_server: LoopbackDnsServer) -> Zone:
    return dns_server.zone


SERVER_REGION = "eu-west-1"


@pytest.fixture
def vpc_id(ec2: Any) -> str:
    return ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]


def create_target_group(
    elbv2: Any,
    vpc_id: str,
    name: str = "orders-primary",
    *,
    target_type: str = "ip",
    interval: int = 10,
    threshold: int = 2,
    attributes: dict[str, str] | None = None,
) -> str:
    """An IP target group on 6379, as the stack makes one: TCP health checks, and (unless
    ``attributes`` says otherwise) a 5 s deregistration delay with connection termination."""
    arn = elbv2.create_target_group(
        Name=name,
        Protocol="TCP",
        Port=6379,
        VpcId=vpc_id,
        TargetType=target_type,
        HealthCheckProtocol="TCP",
        HealthCheckIntervalSeconds=interval,
        HealthyThresholdCount=threshold,
    )["TargetGroups"][0]["TargetGroupArn"]
    if attributes is None:
        attributes = {
            "deregistration_delay.timeout_seconds": "5",
            "deregistration_delay.connection_termination.enabled": "true",
        }
    elbv2.modify_target_group_attributes(
        TargetGroupArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in attributes.items()]
    )
    return arn


@pytest.fixture
def tg_arn(elbv2: Any, vpc_id: str) -> str:
    """The primary's target group, ``orders-primary``."""
    return create_target_group(elbv2, vpc_id)


def registered(elbv2: Any, arn: str) -> set[Target]:
    """The targets ``arn`` holds, in any state."""
    descriptions = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in descriptions}


# The replication group ``orders`` (a primary and a replica, cluster mode disabled): the
# addresses its node names resolve to, and the binding that routes its primary.
ORDERS_PORT = 6379
PRIMARY_IP, REPLICA_IP = "10.0.1.10", "10.0.1.11"


@pytest.fixture
def primary_name(elasticache: Any, dns_server: LoopbackDnsServer) -> str:
    """Creates ``orders``; its primary's node name resolves to PRIMARY_IP, the replica's to
    REPLICA_IP. Returns the primary's node name."""
    elasticache.create_replication_group(ReplicationGroupId="orders", ReplicationGroupDescription="orders", ReplicasPerNodeGroup=1)
    members = elasticache.describe_replication_groups(ReplicationGroupId="orders")["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
    primary = next(m["ReadEndpoint"]["Address"] for m in members if m["CurrentRole"] == "primary")
    for m in members:
        name = m["ReadEndpoint"]["Address"]
        dns_server.zone.set_a(name, PRIMARY_IP if name == primary else REPLICA_IP)
    return str(primary)


@pytest.fixture
def bare_tg_arn(elbv2: Any, ec2: Any) -> str:
    """``orders-primary`` as a user may have made it by hand: moto's defaults for every
    setting (so no connection termination, which a dry run warns about)."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    arn = elbv2.create_target_group(Name="orders-primary", Protocol="TCP", Port=ORDERS_PORT, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    return str(arn)


@pytest.fixture
def owned_elsewhere(elbv2: Any, bare_tg_arn: str) -> None:
    """``orders-primary`` holds the primary and is owned (``OWNER_TAG``) by another stack,
    ``orders-external``."""
    elbv2.register_targets(TargetGroupArn=bare_tg_arn, Targets=[{"Id": PRIMARY_IP, "Port": ORDERS_PORT}])
    elbv2.add_tags(ResourceArns=[bare_tg_arn], Tags=[{"Key": OWNER_TAG, "Value": "orders-external"}])


@pytest.fixture
def lock_table_tagged(dynamodb: Any, elbv2: Any, bare_tg_arn: str) -> None:
    """The lock table ``orders-locks`` exists, and ``orders-primary`` holds the primary and
    names that table in its ``LOCK_TABLE_TAG``."""
    dynamodb.create_table(
        TableName="orders-locks", KeySchema=[{"AttributeName": "lease_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "lease_key", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    elbv2.register_targets(TargetGroupArn=bare_tg_arn, Targets=[{"Id": PRIMARY_IP, "Port": ORDERS_PORT}])
    elbv2.add_tags(ResourceArns=[bare_tg_arn], Tags=[{"Key": LOCK_TABLE_TAG, "Value": "orders-locks"}])


def orders_config(dns_server: LoopbackDnsServer, **settings: Any) -> Config:
    """The binding ``orders-primary`` (``orders``' primary to the group of that name), the
    loopback DNS server as nameserver, short DNS waits, and ``settings`` on top."""
    binding = Binding("orders-primary", ElastiCacheSourceSpec("orders", "primary"), "orders-primary", ORDERS_PORT)
    return Config((binding,), Settings(nameservers=(dns_server.address,), dns_timeout_s=0.5, poll_interval_s=0.05).merged(settings))


def sync_pass(
    cfg: Config, elbv2: Any, ec2: Any, elasticache: Any, dynamodb: Any = None, *, cold: bool = False, **kwargs: Any
) -> SyncReport:
    """One pass over ``cfg``; ``cold``: as a new Lambda instance makes it, nothing cached."""
    if cold:
        nlb.clear_caches()
    sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s), elasticache)
    return sync(cfg, target_groups=TargetGroups(elbv2, ec2, dynamodb=dynamodb), sources=sources, **kwargs)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server (with ``moto_ext``) in a process of its own."""
    with aws_server_process() as url:
        yield url


def server_client(endpoint: str, service: str, config: Any = None) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name=SERVER_REGION, config=config,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def controller_client(endpoint: str, service: str) -> Any:
    """A client with the controller's one retry policy (``aws.BOTO_CONFIG``)."""
    return server_client(endpoint, service, BOTO_CONFIG)


def lambda_env(task: Any, endpoint: str, config: Config) -> dict[str, str]:
    """The function's environment, as the stack gives it, against the moto server at
    ``endpoint`` (``task`` is the unpacked zip, ``conftest.LambdaTask``)."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": SERVER_REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "LAMBDA_TASK_ROOT": str(task.code),
        "CACHEBRIDGE_BINDINGS": config.bindings_json(),
    }


@contextmanager
def unreaped(script: str, *args: str) -> Iterator[tuple[int, str]]:
    """A process running ``python -c script *args`` in a session of its own, whose parent
    never reaps it (as init in a container may not, once 'sandbox up' has returned and left
    the supervisor to it). Yields its PID once it has exited (a zombie) and the first line
    it printed."""
    keeper = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         f"child = subprocess.Popen([sys.executable, '-c', {script!r}, *{list(args)!r}], stdout=subprocess.PIPE, text=True, start_new_session=True)\n"
         "print(child.pid, flush=True)\n"
         "print(child.stdout.readline().strip(), flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert keeper.stdout is not None
        pid = int(keeper.stdout.readline())
        line = keeper.stdout.readline().strip()
        deadline = time.monotonic() + 20
        while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        yield pid, line
    finally:
        keeper.kill()
        keeper.wait(10)
