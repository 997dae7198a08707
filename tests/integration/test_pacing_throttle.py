"""The controller's ELB Describe* pacing (``pacing``) against AWS's documented throttle: a
moto server behind the benchmark proxy that throttles as the ELB guide documents (40
tokens, 10 a second; ``benchmarks/latency.py``), the controller's own adapters
(``aws.adapters``). Calls and outcomes are counted; nothing is timed."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from cachebridge import aws, nlb, pacing
from cachebridge.config import Binding, Config, DnsSourceSpec, Settings
from cachebridge.nlb import TargetGroupInfo, TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.sync import SyncReport, sync

from ..conftest import ManualClock, load_benchmark
from .conftest import SERVER_REGION, server_client

pytestmark = pytest.mark.timeout(180)

N = 60  # more than the bucket's 40: unpaced, a warm pass is throttled
PORT = 6379

latency = load_benchmark("latency")


@dataclass
class Site:
    proxy: Any
    reader: Any  # straight to moto, never throttled
    config: Config
    arns: dict[str, str]
    addresses: dict[str, str]

    def sync(self, **settings: Any) -> SyncReport:
        config = replace(self.config, settings=self.config.settings.merged(settings))
        target_groups, sources = aws.adapters(config.settings)
        return sync(config, target_groups=target_groups, sources=sources)

    def held(self) -> dict[str, set[str]]:
        out = {}
        for name, arn in self.arns.items():
            described = self.reader.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
            out[name] = {d["Target"]["Id"] for d in described}
        return out

    def start(self, throttle: Any) -> None:
        """A pass starts: the proxy's bucket as given, its counters cleared."""
        self.proxy.throttle = throttle
        self.proxy.take()
        self.proxy.take_throttled()


@pytest.fixture(scope="module")
def site(moto_server: str) -> Iterator[Site]:
    """N bindings, each target group holding its node after an unthrottled, unpaced pass
    (the target group details are then cached, as on a warm instance)."""
    host, port = moto_server.removeprefix("http://").split(":")
    proxy = latency.LatencyProxy((host, int(port)), 0.0).start()
    dns = LoopbackDnsServer(Zone(), host="127.0.0.1").start()
    ec2, reader = server_client(moto_server, "ec2"), server_client(moto_server, "elbv2")
    run = uuid.uuid4().hex[:6]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    bindings, arns, addresses = [], {}, {}
    for i in range(N):
        name = f"p{i:02d}-{run}"
        arns[name] = reader.create_target_group(
            Name=f"tg-{name}", Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip",
        )["TargetGroups"][0]["TargetGroupArn"]
        addresses[name] = f"10.0.{20 + i // 200}.{i % 200 + 1}"
        dns.zone.set_a(f"{name}.example.internal", addresses[name])
        bindings.append(Binding(name=name, source=DnsSourceSpec(f"{name}.example.internal"), target_group=f"tg-{name}", port=PORT))
    settings = Settings(nameservers=(dns.address,), poll_interval_s=0.05, dns_timeout_s=1.0)
    with pytest.MonkeyPatch.context() as env:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
            env.delenv(key, raising=False)
        for key, value in {"AWS_ENDPOINT_URL": proxy.url, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": SERVER_REGION}.items():
            env.setenv(key, value)
        aws.clear_caches()
        nlb.clear_caches()
        s = Site(proxy, reader, Config(tuple(bindings), settings), arns, addresses)
        try:
            s.start(None)
            first = s.sync(elb_describe_rate=0)
            assert Counter(b.status for b in first.bindings) == {"changed": N}, [b.error for b in first.bindings][:3]
            yield s
        finally:
            aws.clear_caches()
            nlb.clear_caches()
            proxy.stop()
            dns.stop()


def test_a_paced_pass_is_never_throttled_and_keeps_every_binding_in_sync(site: Site) -> None:
    site.start(latency.Throttle(latency.PROFILES["documented"]))
    pacing.configure(10, 40)
    pacing.reset()  # after the proxy's bucket: ours never refills before AWS's

    report = site.sync()  # the settings' defaults: the documented bucket

    assert Counter(b.status for b in report.bindings) == {"in_sync": N}
    assert site.proxy.take_throttled() == {}
    # One read a binding, none repeated: no retry was needed.
    assert site.proxy.take() == {"DescribeTargetHealth": N}
    assert site.held() == {name: {ip} for name, ip in site.addresses.items()}


def test_an_unpaced_pass_is_throttled_and_writes_nothing(site: Site) -> None:
    # The documented bucket, and no refill while the pass runs.
    bucket = latency.BucketSpec(capacity=40, refill_per_s=10.0, source=latency.ELB_DOC)
    site.start(latency.Throttle({"elbv2-describe": bucket}, clock=ManualClock()))

    report = site.sync(elb_describe_rate=0)

    throttled = site.proxy.take_throttled()
    assert throttled.get("DescribeTargetHealth", 0) >= N - 40
    statuses = Counter(b.status for b in report.bindings)
    assert statuses["error"] >= N - 40 and statuses["in_sync"] == 40
    assert all("Rate exceeded" in (b.error or "") for b in report.bindings if b.status == "error")
    assert site.held() == {name: {ip} for name, ip in site.addresses.items()}


def test_a_read_that_would_wait_past_the_deadline_is_not_made_and_its_binding_is_skipped(site: Site) -> None:
    site.start(latency.Throttle(latency.PROFILES["documented"]))
    # Five tokens, the next one 100 s away: past the deadline, so those reads are refused.
    with pacing.pass_deadline(time.monotonic() + 30):
        report = site.sync(elb_describe_rate=0.01, elb_describe_burst=5)

    statuses = Counter(b.status for b in report.bindings)
    assert statuses == {"in_sync": 5, "skipped": N - 5}
    skipped = [b for b in report.bindings if b.status == "skipped"]
    assert all("ELB Describe budget for this run spent (elb_describe_rate=0.01/s" in (b.error or "") for b in skipped)
    assert site.proxy.take() == {"DescribeTargetHealth": 5}
    assert site.proxy.take_throttled() == {}
    assert site.held() == {name: {ip} for name, ip in site.addresses.items()}


def test_no_target_health_is_read_once_the_deadline_has_passed(site: Site) -> None:
    site.start(None)
    now = [0.0]

    class SlowDetails(TargetGroups):
        """Each binding's detail read ends past the pass's deadline."""

        def info(self, name_or_arn: str, *, vpc: bool = True, details: bool = True) -> TargetGroupInfo:
            info = super().info(name_or_arn, vpc=vpc, details=details)
            now[0] = 100.0
            return info

    config = replace(site.config, settings=site.config.settings.merged({"elb_describe_rate": 0}))
    target_groups, sources = aws.adapters(config.settings)
    report = sync(
        config, target_groups=SlowDetails(target_groups.elbv2), sources=sources,
        clock=lambda: now[0], deadline=50.0, call_budget_s=1.0,
    )

    assert Counter(b.status for b in report.bindings) == {"skipped": N}
    assert all("before the deadline; nothing written" in (b.error or "") for b in report.bindings)
    assert "DescribeTargetHealth" not in site.proxy.take()
    assert site.held() == {name: {ip} for name, ip in site.addresses.items()}
