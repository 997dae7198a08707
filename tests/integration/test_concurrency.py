"""A pass over many bindings at once: order, isolation, the concurrency limit, throttling,
and nothing read twice.

Against a moto server in its own process (in-process moto runs each call under the GIL, so
threads would not really overlap) and a DNS server on loopback. Nothing here is timed:
concurrency is shown with barriers and events, which only complete when the calls really
are in flight together (their timeouts only stop a broken run from hanging).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from cachebridge import aws, nlb
from cachebridge.config import Binding, Config, DnsSourceSpec, ElastiCacheSourceSpec, Settings
from cachebridge.nlb import TargetGroups
from cachebridge.parallel import Failure, OncePerKey, map_ordered
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.sources import DnsResolver, Resolution, Sources
from cachebridge.sync import SyncReport, sync
from cachebridge.targets import Target

from .conftest import CallLog, controller_client

pytestmark = pytest.mark.timeout(180)

PORT = 6379
GATE_S = 20.0  # a fail-safe: a gate not passed by then means the calls never overlapped


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    nlb.clear_caches()
    yield
    nlb.clear_caches()


@pytest.fixture
def dns() -> Iterator[LoopbackDnsServer]:
    server = LoopbackDnsServer(Zone(), host="127.0.0.1").start()
    try:
        yield server
    finally:
        server.stop()


class World:
    """A VPC and ``n`` IP target groups on the moto server, one ``dns://`` name per binding."""

    def __init__(self, endpoint: str, dns: LoopbackDnsServer, n: int) -> None:
        self.endpoint = endpoint
        self.dns = dns
        self.run = uuid.uuid4().hex[:6]
        self.elbv2 = controller_client(endpoint, "elbv2")
        self.reader = controller_client(endpoint, "elbv2")  # the test's own look, never throttled
        self.ec2 = controller_client(endpoint, "ec2")
        self.vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.bindings: list[Binding] = []
        self.arns: dict[str, str] = {}
        for i in range(n):
            self.add(i)

    def host(self, i: int) -> str:
        return f"node{i}.{self.run}.example.internal"

    def ip(self, i: int, moved: int = 0) -> str:
        return f"10.0.{10 + moved}.{i + 1}"

    def add(self, i: int, target_group: str | None = None) -> Binding:
        name = f"b{i:03d}-{self.run}"
        tg = target_group or f"tg{i:03d}-{self.run}"
        if target_group is None:
            self.arns[name] = self.elbv2.create_target_group(
                Name=tg, Protocol="TCP", Port=PORT, VpcId=self.vpc, TargetType="ip",
            )["TargetGroups"][0]["TargetGroupArn"]
        self.dns.zone.set_a(self.host(i), self.ip(i))
        binding = Binding(name=name, source=DnsSourceSpec(self.host(i)), target_group=tg, port=PORT)
        self.bindings.append(binding)
        return binding

    def config(self, max_concurrency: int, bindings: Sequence[Binding] | None = None) -> Config:
        settings = Settings(
            nameservers=(self.dns.address,), poll_interval_s=0.05, dns_timeout_s=1.0, max_concurrency=max_concurrency,
        )
        return Config(tuple(bindings or self.bindings), settings)

    def registered(self, binding: str) -> set[Target]:
        found = self.reader.describe_target_health(TargetGroupArn=self.arns[binding])["TargetHealthDescriptions"]
        return {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in found}

    def sync(self, cfg: Config, *, elbv2: Any = None, resolver: DnsResolver | None = None, ec2: Any = None) -> SyncReport:
        groups = TargetGroups(elbv2 or self.elbv2, ec2 if ec2 is not None else self.ec2)
        sources = Sources(resolver or DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s))
        return sync(cfg, target_groups=groups, sources=sources)


class ReverseOrderResolver(DnsResolver):
    """Answers host ``i`` only after host ``i + 1`` was answered: with every binding in
    flight at once, they finish in the reverse of the configuration's order."""

    def __init__(self, world: World, n: int, *args: Any) -> None:
        super().__init__(*args)
        self._index = {world.host(i): i for i in range(n)}
        self._answered = [threading.Event() for _ in range(n + 1)]
        self._answered[n].set()
        self.finished: list[int] = []
        self._lock = threading.Lock()

    def resolve(self, host: str, families: Sequence[int] = (4, 6)) -> Resolution:
        i = self._index[host]
        if not self._answered[i + 1].wait(GATE_S):
            raise AssertionError(f"host {i + 1} was never resolved while host {i} waited: the reads did not overlap")
        try:
            return super().resolve(host, families)
        finally:
            with self._lock:
                self.finished.append(i)
            self._answered[i].set()


class InFlight:
    """Wraps a client: counts the calls of ``operation`` in flight, and holds each at a
    barrier of ``parties`` so the pass must run that many at once to get past it."""

    def __init__(self, real: Any, operation: str, parties: int) -> None:
        self._real = real
        self._operation = operation
        self._barrier = threading.Barrier(parties, timeout=GATE_S)
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if name != self._operation:
            return attribute

        def counted(**params: Any) -> Any:
            with self._lock:
                self.now += 1
                self.calls += 1
                self.most = max(self.most, self.now)
            try:
                self._barrier.wait()
                return attribute(**params)
            finally:
                with self._lock:
                    self.now -= 1

        return counted


# -- the pool itself -----------------------------------------------------------------------


def test_map_ordered_raises_what_is_not_an_exception_in_the_caller_after_the_others_finish() -> None:
    """SystemExit or KeyboardInterrupt in one item is not that item's result: the caller
    gets it, once every other item has run (none is left half done)."""
    done: list[int] = []

    def work(i: int) -> int:
        if i == 3:
            raise SystemExit("stop")
        done.append(i)
        return i

    with pytest.raises(SystemExit, match="stop"):
        map_ordered(work, range(10), 4)  # type: ignore[arg-type]
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_map_ordered_keeps_the_order_and_returns_a_failure_in_its_place() -> None:
    gates = [threading.Event() for _ in range(5)]

    def work(i: int) -> int:
        # Item i waits for item i + 1: they finish last to first.
        if i < 4 and not gates[i + 1].wait(GATE_S):
            raise AssertionError("items did not run at the same time")
        gates[i].set()
        if i == 2:
            raise RuntimeError("item 2 broke")
        return i * 10

    out = map_ordered(work, [0, 1, 2, 3, 4], 5)

    assert [o for o in out if not isinstance(o, Failure)] == [0, 10, 30, 40]
    assert isinstance(out[2], Failure) and "item 2 broke" in str(out[2].error)


def test_once_per_key_shares_one_read_between_threads_and_remembers_an_error() -> None:
    cache: OncePerKey[str, int] = OncePerKey()
    reads: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def slow_read() -> int:
        reads.append("rg")
        inside.set()
        assert release.wait(GATE_S)
        return 7

    answers: list[int] = []
    first = threading.Thread(target=lambda: answers.append(cache.get("rg", slow_read)))
    first.start()
    assert inside.wait(GATE_S)
    # The read is in progress: a second caller waits for it rather than reading again.
    second = threading.Thread(target=lambda: answers.append(cache.get("rg", slow_read)))
    second.start()
    release.set()
    first.join(GATE_S)
    second.join(GATE_S)
    assert answers == [7, 7] and reads == ["rg"]

    def failing() -> int:
        reads.append("bad")
        raise LookupError("no such group")

    for _ in range(2):
        with pytest.raises(LookupError):
            cache.get("bad", failing)
    assert reads == ["rg", "bad"]
    cache.clear()
    assert "rg" not in cache


# -- sync over many bindings ---------------------------------------------------------------


def test_results_come_in_configuration_order_when_bindings_finish_in_reverse(moto_server: str, dns: LoopbackDnsServer) -> None:
    n = 6
    world = World(moto_server, dns, n)
    cfg = world.config(max_concurrency=n)
    resolver = ReverseOrderResolver(world, n, cfg.settings.nameservers, cfg.settings.dns_timeout_s)

    report = world.sync(cfg, resolver=resolver)

    assert resolver.finished[:n] == list(reversed(range(n)))  # the first round, last to first
    assert [b.name for b in report.bindings] == [b.name for b in world.bindings]
    for i, result in enumerate(report.bindings):
        assert result.status == "changed", result.error
        assert result.register == (Target(world.ip(i), PORT),)
        assert world.registered(result.name) == {Target(world.ip(i), PORT)}


def test_a_failing_binding_costs_the_others_nothing(moto_server: str, dns: LoopbackDnsServer) -> None:
    world = World(moto_server, dns, 4)
    missing = world.add(4, target_group=f"missing-{world.run}")
    broken_host = world.host(1)

    class Broken(DnsResolver):
        def resolve(self, host: str, families: Sequence[int] = (4, 6)) -> Resolution:
            if host == broken_host:
                raise RuntimeError("resolver bug")
            return super().resolve(host, families)

    cfg = world.config(max_concurrency=4)
    report = world.sync(cfg, resolver=Broken(cfg.settings.nameservers, cfg.settings.dns_timeout_s))

    statuses = {b.name: b.status for b in report.bindings}
    assert [b.name for b in report.bindings] == [b.name for b in world.bindings]
    assert statuses[world.bindings[1].name] == "error"
    assert "resolver bug" in (report.bindings[1].error or "")
    assert statuses[missing.name] == "error" and "missing-" in (report.bindings[4].error or "")
    for i in (0, 2, 3):
        name = world.bindings[i].name
        assert statuses[name] == "changed"
        assert world.registered(name) == {Target(world.ip(i), PORT)}
    assert world.registered(world.bindings[1].name) == set()


@pytest.mark.parametrize("limit", [1, 3])
def test_no_more_calls_in_flight_than_max_concurrency(moto_server: str, dns: LoopbackDnsServer, limit: int) -> None:
    world = World(moto_server, dns, 3 * limit)
    # Each DescribeTargetHealth waits until ``limit`` of them are in flight together.
    health = InFlight(world.elbv2, "describe_target_health", limit)

    report = world.sync(world.config(max_concurrency=limit), elbv2=health)

    assert [b.status for b in report.bindings] == ["changed"] * (3 * limit)
    assert health.most == limit
    assert health.calls >= 3 * limit


# -- throttling ----------------------------------------------------------------------------


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


THROTTLED = (
    b'<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">'
    b"<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"<RequestId>throttled</RequestId></ErrorResponse>"
)


class Throttle:
    """Answers DescribeTargetHealth of one target group with ``Throttling`` (HTTP 400) the
    first ``times`` times it is sent, below botocore's retry loop (``before-send``), and
    counts every send: a retry anywhere shows up here."""

    def __init__(self, client: Any, arn: str, times: int) -> None:
        self.arn = arn
        self.times = times
        self.sends = 0
        self._lock = threading.Lock()
        client.meta.events.register("before-send.elastic-load-balancing-v2.DescribeTargetHealth", self._send)

    def _send(self, request: Any, **_: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        if self.arn.replace(":", "%3A").replace("/", "%2F") not in body:
            return None
        with self._lock:
            self.sends += 1
            if self.sends > self.times:
                return None
        return AWSResponse(request.url, 400, {"Content-Type": "text/xml"}, _Body(THROTTLED))


def test_a_throttled_call_is_retried_by_botocore_alone_and_reported_plainly(moto_server: str, dns: LoopbackDnsServer) -> None:
    world = World(moto_server, dns, 3)
    throttled = world.bindings[1].name
    throttle = Throttle(world.elbv2, world.arns[throttled], times=100)

    report = world.sync(world.config(max_concurrency=3))

    result = report.bindings[1]
    assert result.status == "error"
    assert "Throttling" in (result.error or "") and "Rate exceeded" in (result.error or "")
    # Every attempt botocore's policy allows, and not one more: no second retry layer.
    assert throttle.sends == aws.TOTAL_MAX_ATTEMPTS
    assert world.registered(throttled) == set()  # nothing written on a failed read
    assert [b.status for i, b in enumerate(report.bindings) if i != 1] == ["changed", "changed"]


def test_a_throttle_that_passes_costs_one_retry_and_no_error(moto_server: str, dns: LoopbackDnsServer) -> None:
    world = World(moto_server, dns, 2)
    throttled = world.bindings[0].name
    throttle = Throttle(world.elbv2, world.arns[throttled], times=1)

    report = world.sync(world.config(max_concurrency=2))

    assert [b.status for b in report.bindings] == ["changed", "changed"]
    # The first read was throttled and retried once; the writes re-read the group after.
    assert throttle.sends >= 2
    assert world.registered(throttled) == {Target(world.ip(0), PORT)}


# -- batching: nothing read twice ----------------------------------------------------------


def test_an_in_sync_pass_reads_each_thing_once_and_never_builds_the_ec2_client(moto_server: str, dns: LoopbackDnsServer) -> None:
    """24 bindings on 12 replication groups (primary and replicas of each), 8 at a time."""
    elasticache = controller_client(moto_server, "elasticache")
    world = World(moto_server, dns, 0)
    bindings: list[Binding] = []
    groups = 12
    for g in range(groups):
        rg = f"rg{g:02d}{world.run}"
        elasticache.create_replication_group(ReplicationGroupId=rg, ReplicationGroupDescription="t", ReplicasPerNodeGroup=1)
        members = elasticache.describe_replication_groups(ReplicationGroupId=rg)["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
        for m, member in enumerate(members):
            dns.zone.set_a(member["ReadEndpoint"]["Address"], f"10.0.{20 + g}.{m + 1}")
        for role in ("primary", "replicas"):
            name = f"{rg}-{role}"
            world.arns[name] = world.elbv2.create_target_group(
                Name=name[:32], Protocol="TCP", Port=PORT, VpcId=world.vpc, TargetType="ip",
            )["TargetGroups"][0]["TargetGroupArn"]
            bindings.append(Binding(name=name, source=ElastiCacheSourceSpec(rg, role), target_group=world.arns[name], port=PORT))  # type: ignore[arg-type]
    cfg = world.config(max_concurrency=8, bindings=bindings)
    built: list[str] = []

    def ec2_factory() -> Any:
        built.append("ec2")
        return world.ec2

    def run() -> tuple[SyncReport, CallLog]:
        log = CallLog(world.elbv2, elasticache)
        groups_ = TargetGroups(world.elbv2, ec2_factory)
        sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s), elasticache)
        report = sync(cfg, target_groups=groups_, sources=sources)
        for client in (world.elbv2, elasticache):
            client.meta.events.unregister("before-parameter-build", log._record)
        return report, log

    first, _ = run()  # registers every binding: needs the VPC, once for all 24
    assert {b.status for b in first.bindings} == {"changed"}, [b.error for b in first.bindings]
    assert built == ["ec2"]
    nlb.clear_caches()  # a new instance: nothing cached
    built.clear()

    report, log = run()

    assert {b.status for b in report.bindings} == {"in_sync"}
    names = log.names()
    # The 12 groups, shared by their two bindings each, listed in one page (sources.LIST_PAGE_SIZE).
    assert names.count("DescribeReplicationGroups") == 1
    assert [params for params in log.of("DescribeReplicationGroups")] == [{"MaxRecords": 100}]
    assert names.count("DescribeTargetHealth") == len(bindings)  # one per target group
    assert names.count("DescribeTargetGroups") == 2  # in batches of nlb.DESCRIBE_CHUNK (20)
    # Tags and attributes matter only before a write: an in-sync new instance reads neither.
    assert names.count("DescribeTags") == names.count("DescribeTargetGroupAttributes") == 0
    assert not {"RegisterTargets", "DeregisterTargets"} & set(names)
    assert built == []  # no EC2 client, no DescribeVpcs: nothing was to be written
