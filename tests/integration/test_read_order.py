"""Which target groups a pass reads first, and what it keeps back (``read_order``), end to
end: moto in-process (with ``moto_ext``), a real loopback DNS server, ``dns://`` sources.
The order of the target health reads is observed with a botocore hook on the real client;
time is a fake clock where a deadline or the pacing bucket is involved, so nothing is timed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cachebridge import aws, nlb, pacing
from cachebridge.config import Binding, Config, DnsSourceSpec, Settings
from cachebridge.nlb import TargetGroups
from cachebridge.read_order import rotation_offset
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import SyncReport, sync
from cachebridge.targets import Target

from .conftest import CallLog, create_target_group, registered

pytestmark = pytest.mark.timeout(120)

PORT = 6379


@dataclass
class Site:
    dns: LoopbackDnsServer
    elbv2: Any
    ec2: Any
    config: Config
    arns: list[str]  # in configuration order

    def host(self, i: int) -> str:
        return f"node{i}.orders.internal"

    def ip(self, i: int, moved: bool = False) -> str:
        return f"10.0.{2 if moved else 1}.{i + 1}"

    def run(self, config: Config | None = None, **kwargs: Any) -> SyncReport:
        cfg = config or self.config
        sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s))
        return sync(cfg, target_groups=TargetGroups(self.elbv2, self.ec2), sources=sources, **kwargs)

    def health_reads(self, log: CallLog) -> list[int]:
        """The bindings whose group's health was read, by index, in the order read."""
        return [self.arns.index(p["TargetGroupArn"]) for p in log.of("DescribeTargetHealth")]


def make_site(dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any, vpc_id: str, n: int, **settings: Any) -> Site:
    bindings, arns = [], []
    site = Site(dns_server, elbv2, ec2, Config(()), [])
    for i in range(n):
        arns.append(create_target_group(elbv2, vpc_id, f"tg-{i:02d}"))
        dns_server.zone.set_a(site.host(i), site.ip(i))
        bindings.append(Binding(name=f"b{i:02d}", source=DnsSourceSpec(site.host(i)), target_group=f"tg-{i:02d}", port=PORT))
    values: dict[str, Any] = {"nameservers": (dns_server.address,), "poll_interval_s": 0.05, "dns_timeout_s": 1.0, "max_concurrency": 1}
    values.update(settings)
    site.config, site.arns = Config(tuple(bindings), Settings(**values)), arns
    first = site.run()
    assert [b.status for b in first.bindings] == ["changed"] * n, [b.error for b in first.bindings]
    return site


@pytest.fixture
def site(dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any, vpc_id: str) -> Site:
    return make_site(dns_server, elbv2, ec2, vpc_id, 6)


def test_a_changed_bindings_group_is_read_before_the_unchanged_ones(site: Site) -> None:
    site.dns.zone.set_a(site.host(4), site.ip(4, moved=True))
    log = CallLog(site.elbv2)

    report = site.run()

    # The first health read is the group whose source now says something else than what
    # this process last saw there; then the rest, least recently read first.
    reads = site.health_reads(log)
    assert reads[0] == 4
    assert set(reads[1:]) == {0, 1, 2, 3, 4, 5}  # the others, and the re-reads around its writes
    assert [b.name for b in report.bindings] == [f"b{i:02d}" for i in range(6)]  # configuration order
    assert [b.status for b in report.bindings] == ["in_sync"] * 4 + ["changed", "in_sync"]
    assert registered(site.elbv2, site.arns[4]) == {Target(site.ip(4, moved=True), PORT)}


def test_the_least_recently_read_groups_come_first(site: Site) -> None:
    # The set-up pass read the groups last in configuration order (the re-read before each
    # write). A pass that reads groups 3 and 1 only (1 first: read longer ago) makes them
    # the most recently read.
    log = CallLog(site.elbv2)
    site.run(bindings=[site.config.bindings[3], site.config.bindings[1]])
    assert site.health_reads(log) == [1, 3]
    log.clear()

    site.run()

    assert site.health_reads(log) == [0, 2, 4, 5, 1, 3]


def test_groups_never_read_start_at_a_point_that_moves_with_the_minute(site: Site) -> None:
    starts = []
    for minute in (0, 1, 2):
        nlb.clear_caches()  # a new instance: nothing read yet
        log = CallLog(site.elbv2)

        report = site.run(wall_clock=lambda: minute * 60.0 + 30)

        reads = site.health_reads(log)
        start = rotation_offset(6, minute * 60.0 + 30, None)
        assert reads == [(start + i) % 6 for i in range(6)]  # every group, rotated
        assert [b.status for b in report.bindings] == ["in_sync"] * 6
        assert [b.name for b in report.bindings] == [f"b{i:02d}" for i in range(6)]
        starts.append(reads[0])
    assert len(set(starts)) == 3


def test_the_sources_are_read_before_any_target_health(site: Site) -> None:
    queries: list[str] = []
    log = CallLog(site.elbv2)
    site.elbv2.meta.events.register(
        "before-call.elastic-load-balancing-v2.DescribeTargetHealth", lambda **_: queries.append("health"),
    )
    resolve = DnsResolver.resolve

    def counted(self: DnsResolver, host: str, families: Any = (4, 6)) -> Any:
        queries.append("source")
        return resolve(self, host, families)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DnsResolver, "resolve", counted)
        report = site.run()

    assert queries == ["source"] * 6 + ["health"] * 6
    assert [b.polls for b in report.bindings] == [1] * 6
    assert len(log.of("DescribeTargetHealth")) == 6


# -- the reserve, under the pacing bucket, in fake time ------------------------------------------


class FakeTime:
    """One clock for the pass, the deadline and the pacing bucket; sleeping moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@pytest.fixture
def paced(dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any, vpc_id: str) -> Iterator[tuple[Site, FakeTime]]:
    site = make_site(dns_server, elbv2, ec2, vpc_id, 30)  # unpaced set-up: every group holds its node
    aws.paced_elbv2(site.elbv2, site.config.settings.merged({"elb_describe_rate": 1, "elb_describe_burst": 5}))
    try:
        yield site, FakeTime()
    finally:
        pacing.configure(0, 1)


def paced_pass(site: Site, fake: FakeTime, deadline: float) -> SyncReport:
    """A pass on ``fake`` time, its ELB Describe* calls paced to 1 a second after a burst of 5."""
    fake.now = 0.0
    pacing.configure(1, 5, clock=fake.clock, sleep=fake.sleep)
    with pacing.pass_deadline(deadline):
        return site.run(clock=fake.clock, sleep=fake.sleep, deadline=deadline, call_budget_s=2.0)


def test_a_pass_that_finds_a_change_applies_it_before_the_deadline_instead_of_reading_more(paced: tuple[Site, FakeTime]) -> None:
    site, fake = paced
    log = CallLog(site.elbv2)
    quiet = paced_pass(site, fake, deadline=20.0)
    quiet_reads = len(log.of("DescribeTargetHealth"))
    # Nothing changed: the health reads go on until the deadline (5, then 1 a second).
    assert Counter(b.status for b in quiet.bindings)["in_sync"] == quiet_reads
    assert quiet_reads >= 20
    assert all("deadline" in (b.error or "") for b in quiet.bindings if b.status == "skipped")

    site.dns.zone.set_a(site.host(25), site.ip(25, moved=True))
    log.clear()
    report = paced_pass(site, fake, deadline=20.0)
    ended = fake.now

    moved = report.bindings[25]
    assert moved.status == "changed", moved.error
    assert (moved.register, moved.deregister) == ((Target(site.ip(25, moved=True), PORT),), (Target(site.ip(25), PORT),))
    assert registered(site.elbv2, site.arns[25]) == {Target(site.ip(25, moved=True), PORT)}
    assert ended <= 20.0
    assert [w for w in log.writes()] == [
        ("RegisterTargets", [Target(site.ip(25, moved=True), PORT)]),
        ("DeregisterTargets", [Target(site.ip(25), PORT)]),
    ]
    names = log.names()
    reads = [(i, site.arns.index(p["TargetGroupArn"])) for i, (name, p) in enumerate(log.calls) if name == "DescribeTargetHealth"]
    before = [g for i, g in reads if i < names.index("RegisterTargets")]
    after = [g for i, g in reads if i > names.index("DeregisterTargets") and g != 25]
    # The changed group first; once its change was found, the reads stopped early enough to
    # confirm and write it: far fewer groups were read before the write than the quiet
    # pass read in all.
    assert before[0] == 25
    assert len(set(before)) < quiet_reads - 5
    # The time left after the write reads the groups held back, up to the deadline: they
    # are verified; those still not read say why, with nothing written to them.
    assert after and all(report.bindings[g].status == "in_sync" for g in after)
    kept = [i for i, b in enumerate(report.bindings) if b.status == "skipped"]
    assert kept and all("kept to apply the changes found" in (report.bindings[i].error or "") for i in kept)
    assert not set(kept) & {g for _, g in reads}
    assert Counter(b.status for b in report.bindings)["in_sync"] == len(set(before + after) - {25})
    assert [b.name for b in report.bindings] == [f"b{i:02d}" for i in range(30)]


def test_the_groups_a_pass_did_not_reach_are_read_first_by_the_next(paced: tuple[Site, FakeTime]) -> None:
    site, fake = paced
    nlb.clear_caches()  # a new instance: the groups it never read come in turn
    first = paced_pass(site, fake, deadline=10.0)
    skipped = {i for i, b in enumerate(first.bindings) if b.status == "skipped"}
    assert skipped and len(skipped) < 30
    log = CallLog(site.elbv2)

    second = paced_pass(site, fake, deadline=20.0)  # time enough for those and more

    reads = site.health_reads(log)
    assert set(reads[: len(skipped)]) == skipped  # never read by this process: first
    assert {i for i, b in enumerate(second.bindings) if b.status == "in_sync"} >= skipped
