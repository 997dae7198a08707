"""Hostile attacks on the read order (``read_order``), the per-process memory of what each
group held (``nlb.last_seen``) and the held-back reads of ``sync``: moto in-process (with
``moto_ext``), a real loopback DNS server, ``dns://`` sources; faults injected with botocore
hooks on the real client; time a fake clock where a deadline is involved, so nothing is timed."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cachebridge import nlb, pacing
from cachebridge.errors import ConfigError
from cachebridge.config import Binding, Config, DnsSourceSpec, Settings
from cachebridge.nlb import TargetGroups, last_seen
from cachebridge.sources import DnsResolver, Reading, Sources
from cachebridge.sync import SyncReport, Trigger, sync
from cachebridge.targets import Target

from .conftest import CallLog, create_target_group, registered
from .test_read_order import FakeTime, Site, make_site

pytestmark = pytest.mark.timeout(120)

PORT = 6379


@pytest.fixture
def site(dns_server: Any, elbv2: Any, ec2: Any, vpc_id: str) -> Iterator[Site]:
    pacing.configure(0, 1)
    yield make_site(dns_server, elbv2, ec2, vpc_id, 6)


def seen(site: Site, i: int) -> frozenset[Target] | None:
    last = last_seen(TargetGroups(site.elbv2, site.ec2), site.arns[i])
    return last.targets if last is not None else None


class SlowSources(Sources):
    """Real DNS answers that take ``per_read_s`` of the pass's (fake) clock each: a slow
    resolver, or many bindings read ``max_concurrency`` at a time."""

    def __init__(self, resolver: DnsResolver, fake: FakeTime, per_read_s: float) -> None:
        super().__init__(resolver)
        self.fake, self.per_read_s = fake, per_read_s
        self._lock = threading.Lock()

    def read(self, spec: Any, families: Any = (4, 6)) -> Reading:
        with self._lock:
            self.fake.now += self.per_read_s
        return super().read(spec, families)


@contextmanager
def failing(site: Site, operation: str, arn: str | None = None, error: Exception | None = None) -> Iterator[None]:
    """``operation`` (on ``arn``, or any group) fails on the real client, before it is sent."""

    def hook(model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name == operation and (arn is None or params.get("TargetGroupArn") == arn):
            raise error or ClientError({"Error": {"Code": "InternalFailure", "Message": "injected"}}, operation)

    site.elbv2.meta.events.register("before-parameter-build", hook)
    try:
        yield
    finally:
        site.elbv2.meta.events.unregister("before-parameter-build", hook)


# -- the reserve -----------------------------------------------------------------------------


def test_a_slow_first_source_round_does_not_defer_every_change_forever(dns_server: Any, elbv2: Any, ec2: Any, vpc_id: str) -> None:
    """The reserve estimated the confirming read as long as the whole first round of source
    reads; the confirming round re-reads only the changed bindings. With a first round
    that takes over half of the time left, every change was 'found too late', every run."""
    pacing.configure(0, 1)
    site = make_site(dns_server, elbv2, ec2, vpc_id, 30)
    site.dns.zone.set_a(site.host(25), site.ip(25, moved=True))
    fake = FakeTime()
    cfg = site.config
    reports = []
    for _ in range(2):  # the next run reads the changed group first: it must apply it then
        fake.now = 0.0
        sources = SlowSources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s), fake, 0.7)
        reports.append(sync(
            cfg, target_groups=TargetGroups(site.elbv2, site.ec2), sources=sources,
            clock=fake.clock, sleep=fake.sleep, deadline=40.0, call_budget_s=2.0,
        ))
        assert fake.now <= 40.0
    statuses = [r.bindings[25].status for r in reports]
    assert "changed" in statuses, [r.bindings[25].error for r in reports]
    assert registered(site.elbv2, site.arns[25]) == {Target(site.ip(25, moved=True), PORT)}
    # Nothing else was touched.
    assert all(registered(site.elbv2, site.arns[i]) == {Target(site.ip(i), PORT)} for i in range(25))


def test_a_deadline_inside_the_reserve_writes_nothing_and_leaves_the_change_for_later(site: Site) -> None:
    """A deadline too close, this run, for the confirming read and the writes (the target
    group details took most of the pass): the change is skipped, nothing written, the group
    keeps its target; a later pass with time applies it."""
    site.dns.zone.set_a(site.host(2), site.ip(2, moved=True))
    fake = FakeTime()
    nlb.clear_caches()  # a new instance: the details are read first, slowly this time

    def slow_details(**_: Any) -> None:
        fake.now += 25.0

    site.elbv2.meta.events.register_first("before-call.elastic-load-balancing-v2.DescribeTargetGroups", slow_details)
    log = CallLog(site.elbv2)
    try:
        report = site.run(clock=fake.clock, sleep=fake.sleep, deadline=30.0, call_budget_s=2.0)
    finally:
        site.elbv2.meta.events.unregister("before-call.elastic-load-balancing-v2.DescribeTargetGroups", slow_details)

    assert report.bindings[2].status == "skipped", report.bindings[2].error
    assert "next run" in (report.bindings[2].error or "")
    assert log.writes() == []
    assert registered(site.elbv2, site.arns[2]) == {Target(site.ip(2), PORT)}
    later = site.run()
    assert later.bindings[2].status == "changed"
    assert registered(site.elbv2, site.arns[2]) == {Target(site.ip(2, moved=True), PORT)}


def test_a_deadline_no_pass_could_fit_a_change_in_is_an_error_that_writes_nothing(site: Site) -> None:
    """A deadline too close for any pass to confirm and write a change (3 s against two
    calls of 2 s at their worst): an error saying so, nothing written, the group keeps its
    target; a pass with time applies it."""
    site.dns.zone.set_a(site.host(2), site.ip(2, moved=True))
    fake = FakeTime()
    log = CallLog(site.elbv2)
    report = site.run(clock=fake.clock, sleep=fake.sleep, deadline=3.0, call_budget_s=2.0)

    assert report.bindings[2].status == "error"
    assert "no pass that starts like this one" in (report.bindings[2].error or "")
    assert log.writes() == []
    assert registered(site.elbv2, site.arns[2]) == {Target(site.ip(2), PORT)}
    later = site.run()
    assert later.bindings[2].status == "changed"


# -- the wall clock --------------------------------------------------------------------------


@pytest.mark.parametrize("wall", [math.inf, -math.inf, math.nan, 1e300, -1e12])
def test_a_hostile_wall_clock_orders_reads_and_never_ends_the_pass(site: Site, wall: float) -> None:
    """``wall_clock`` only sets where never-read groups start: an infinite, NaN, huge or
    negative value must not end the pass with an exception."""
    nlb.clear_caches()  # every group never read: the rotation decides
    site.dns.zone.set_a(site.host(4), site.ip(4, moved=True))

    report = site.run(wall_clock=lambda: wall)

    assert [b.status for b in report.bindings] == ["in_sync"] * 4 + ["changed", "in_sync"]
    assert registered(site.elbv2, site.arns[4]) == {Target(site.ip(4, moved=True), PORT)}


def test_a_wall_clock_going_backwards_still_reads_every_group(site: Site) -> None:
    nlb.clear_caches()
    times = iter([600.0, 60.0, -60.0])
    for _ in range(3):
        report = site.run(wall_clock=lambda t=next(times): t)
        assert [b.status for b in report.bindings] == ["in_sync"] * 6


# -- the memory ------------------------------------------------------------------------------


def test_a_group_another_writer_emptied_is_refilled_though_the_memory_says_it_is_in_sync(site: Site) -> None:
    """The memory says the group holds its node; a human (or another controller) emptied
    it. The pass writes from what it reads now, not from the memory."""
    assert seen(site, 3) == {Target(site.ip(3), PORT)}
    site.elbv2.deregister_targets(TargetGroupArn=site.arns[3], Targets=[{"Id": site.ip(3), "Port": PORT}])
    site.elbv2.register_targets(TargetGroupArn=site.arns[1], Targets=[{"Id": "10.0.9.9", "Port": PORT}])

    report = site.run()

    assert report.bindings[3].status == "changed" and report.bindings[3].register == (Target(site.ip(3), PORT),)
    assert registered(site.elbv2, site.arns[3]) == {Target(site.ip(3), PORT)}
    assert report.bindings[1].deregister == (Target("10.0.9.9", PORT),)
    assert registered(site.elbv2, site.arns[1]) == {Target(site.ip(1), PORT)}
    assert seen(site, 3) == {Target(site.ip(3), PORT)} and seen(site, 1) == {Target(site.ip(1), PORT)}


def test_a_second_controller_with_another_view_does_not_empty_a_group(site: Site) -> None:
    """Two processes' memories disagree (the second controller is a process of its own: its
    memory is empty); each writes from its own reads; the group is never empty between them."""
    site.dns.zone.set_a(site.host(0), site.ip(0, moved=True))
    first = site.run()
    assert first.bindings[0].status == "changed"
    saved = dict(nlb._seen)
    nlb._seen.clear()  # "another process": nothing remembered
    site.dns.zone.set_a(site.host(0), site.ip(0))
    other = site.run()
    assert other.bindings[0].status == "changed"
    nlb._seen.clear()
    nlb._seen.update(saved)  # back to the first process: it remembers the moved address
    assert seen(site, 0) == {Target(site.ip(0, moved=True), PORT)}

    again = site.run()

    assert again.bindings[0].status == "in_sync"  # its source agrees with the group now
    assert registered(site.elbv2, site.arns[0]) == {Target(site.ip(0), PORT)}
    assert seen(site, 0) == {Target(site.ip(0), PORT)}


def test_a_failed_register_is_not_remembered_as_written(site: Site) -> None:
    site.dns.zone.set_a(site.host(5), site.ip(5, moved=True))

    with failing(site, "RegisterTargets"):
        failed = site.run()

    assert failed.bindings[5].status == "error"
    assert registered(site.elbv2, site.arns[5]) == {Target(site.ip(5), PORT)}
    assert seen(site, 5) == {Target(site.ip(5), PORT)}  # what is there, not what was meant
    log = CallLog(site.elbv2)
    retried = site.run()
    assert site.health_reads(log)[0] == 5  # still a change: read first
    assert retried.bindings[5].status == "changed"
    assert registered(site.elbv2, site.arns[5]) == {Target(site.ip(5, moved=True), PORT)}


def test_a_failed_deregister_after_a_register_remembers_both_targets(site: Site) -> None:
    site.dns.zone.set_a(site.host(5), site.ip(5, moved=True))

    with failing(site, "DeregisterTargets"):
        partial = site.run()

    both = {Target(site.ip(5), PORT), Target(site.ip(5, moved=True), PORT)}
    assert partial.bindings[5].status == "error"
    assert registered(site.elbv2, site.arns[5]) == both
    assert seen(site, 5) == both
    log = CallLog(site.elbv2)
    site.run()
    assert site.health_reads(log)[0] == 5
    assert registered(site.elbv2, site.arns[5]) == {Target(site.ip(5, moved=True), PORT)}


def test_an_exception_mid_pass_keeps_the_memory_of_what_was_read(site: Site) -> None:
    """A surprise in the health read of one group: that binding is an error, the others go
    on, and the failed group's memory is what was read before, not something invented."""
    site.dns.zone.set_a(site.host(1), site.ip(1, moved=True))

    with failing(site, "DescribeTargetHealth", site.arns[1], RuntimeError("injected")):
        report = site.run()

    assert report.bindings[1].status == "error" and "injected" in (report.bindings[1].error or "")
    assert registered(site.elbv2, site.arns[1]) == {Target(site.ip(1), PORT)}
    assert [b.status for i, b in enumerate(report.bindings) if i != 1] == ["in_sync"] * 5
    assert seen(site, 1) == {Target(site.ip(1), PORT)}
    assert site.run().bindings[1].status == "changed"


def test_a_dry_run_writes_nothing_and_remembers_only_what_it_read(site: Site) -> None:
    site.dns.zone.set_a(site.host(2), site.ip(2, moved=True))
    log = CallLog(site.elbv2)

    dry = site.run(dry_run=True)

    assert dry.bindings[2].status == "dry_run" and dry.bindings[2].register == (Target(site.ip(2, moved=True), PORT),)
    assert log.writes() == []
    assert registered(site.elbv2, site.arns[2]) == {Target(site.ip(2), PORT)}
    assert seen(site, 2) == {Target(site.ip(2), PORT)}
    log.clear()
    real = site.run()
    assert site.health_reads(log)[0] == 2  # still a change for the memory: read first
    assert real.bindings[2].status == "changed"


# -- sources ---------------------------------------------------------------------------------


def test_a_failed_source_never_empties_its_group_and_does_not_block_the_others(site: Site) -> None:
    site.dns.zone.remove(site.host(0))  # NXDOMAIN
    site.dns.zone.set_a(site.host(3), site.ip(3, moved=True))

    report = site.run()

    assert report.bindings[0].status == "error"
    assert registered(site.elbv2, site.arns[0]) == {Target(site.ip(0), PORT)}
    assert report.bindings[3].status == "changed"
    assert registered(site.elbv2, site.arns[3]) == {Target(site.ip(3, moved=True), PORT)}


def test_a_source_that_flips_between_the_first_and_the_confirming_read_is_not_applied_half_way(site: Site) -> None:
    """The first read says A, the confirming read B (a second failover in between): the pass
    applies only an answer read twice, or nothing; never a mix, never an empty group."""
    site.dns.zone.set_a(site.host(1), site.ip(1, moved=True))
    calls = {"n": 0}
    original = site.dns.zone.set_a

    class Flipping(Sources):
        def read(self, spec: Any, families: Any = (4, 6)) -> Reading:
            if spec.host == site.host(1):
                calls["n"] += 1
                if calls["n"] == 2:
                    original(site.host(1), "10.0.3.2")
            return super().read(spec, families)

    cfg = site.config
    report = sync(cfg, target_groups=TargetGroups(site.elbv2, site.ec2), sources=Flipping(DnsResolver(cfg.settings.nameservers, 1.0)))

    held = registered(site.elbv2, site.arns[1])
    assert held in ({Target(site.ip(1), PORT)}, {Target("10.0.3.2", PORT)})
    if report.bindings[1].status == "changed":
        assert held == {Target("10.0.3.2", PORT)} and calls["n"] >= 3


def test_the_same_group_named_by_name_and_by_arn_belongs_to_the_first_binding(site: Site) -> None:
    s = site.config.settings
    bindings = (
        Binding(name="by-name", source=DnsSourceSpec(site.host(0)), target_group="tg-00", port=PORT),
        Binding(name="by-arn", source=DnsSourceSpec(site.host(1)), target_group=site.arns[0], port=PORT),
    )
    with pytest.raises(ConfigError, match="already bound"):
        Config(bindings, s)


# -- events ----------------------------------------------------------------------------------


def test_an_event_still_waits_for_the_change_and_applies_it(site: Site) -> None:
    """A failover event arrives before DNS flips: the pass keeps re-reading and applies the
    change when it comes, under the new order (sources first, then health)."""
    cfg = Config(site.config.bindings, site.config.settings.merged({"event_wait_s": 5.0, "poll_interval_s": 0.05}))
    reads = {"n": 0}

    class Late(Sources):
        def read(self, spec: Any, families: Any = (4, 6)) -> Reading:
            if spec.host == site.host(3):
                reads["n"] += 1
                if reads["n"] == 4:  # DNS flips after three unchanged answers
                    site.dns.zone.set_a(site.host(3), site.ip(3, moved=True))
            return super().read(spec, families)

    report = sync(
        cfg, target_groups=TargetGroups(site.elbv2, site.ec2), sources=Late(DnsResolver(cfg.settings.nameservers, 1.0)),
        trigger=Trigger(kind="event", wait_for_change=True), bindings=[cfg.bindings[3]],
    )

    assert report.bindings[0].status == "changed", report.bindings[0].error
    assert registered(site.elbv2, site.arns[3]) == {Target(site.ip(3, moved=True), PORT)}
    assert seen(site, 3) == {Target(site.ip(3, moved=True), PORT)}


# -- starvation --------------------------------------------------------------------------------


def test_a_change_behind_changes_that_never_apply_is_applied_within_a_few_runs(dns_server: Any, elbv2: Any, ec2: Any, vpc_id: str) -> None:
    """Three groups owned by another stack (their source differs forever: never written
    here) are "changed" on every run and read first. A real change found behind them, when
    the time left no longer covers it, is promised to be read first by the next run; it
    was read last again (its read was the most recent), run after run."""
    from cachebridge import aws
    from cachebridge.nlb import OWNER_TAG

    site = make_site(dns_server, elbv2, ec2, vpc_id, 12)
    for i in (0, 1, 2):
        site.elbv2.add_tags(ResourceArns=[site.arns[i]], Tags=[{"Key": OWNER_TAG, "Value": "another-stack"}])
        site.dns.zone.set_a(site.host(i), site.ip(i, moved=True))
    nlb.clear_caches()  # the owner tags are read afresh (details are cached per process)
    first = site.run(wall_clock=lambda: 0.0)  # "changed" for this process from now on; read in order
    assert [b.status for b in first.bindings[:3]] == ["error"] * 3
    site.dns.zone.set_a(site.host(9), site.ip(9, moved=True))
    aws.paced_elbv2(site.elbv2, site.config.settings.merged({"elb_describe_rate": 1, "elb_describe_burst": 5}))
    fake = FakeTime()
    statuses = []
    try:
        for _ in range(6):  # one change applied a run: it is the fourth at the latest
            fake.now = 0.0
            pacing.configure(1, 5, clock=fake.clock, sleep=fake.sleep)
            with pacing.pass_deadline(16.0):
                report = site.run(clock=fake.clock, sleep=fake.sleep, deadline=16.0, call_budget_s=2.0)
            statuses.append(report.bindings[9].status)
            assert all(registered(site.elbv2, site.arns[i]) == {Target(site.ip(i), PORT)} for i in (0, 1, 2))
            if report.bindings[9].status == "changed":
                break
    finally:
        pacing.configure(0, 1)
    assert statuses[-1] == "changed", statuses
    assert registered(site.elbv2, site.arns[9]) == {Target(site.ip(9, moved=True), PORT)}


def test_a_pass_clock_going_backwards_never_sleeps_longer_than_a_poll(site: Site) -> None:
    """The pass's clock steps back during the source reads (an injected clock; a VM's
    clock): the pause before the confirming read is at most a poll interval."""
    fake = FakeTime()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        fake.sleep(seconds)

    class Backwards(Sources):
        def read(self, spec: Any, families: Any = (4, 6)) -> Reading:
            fake.now -= 1000.0
            return super().read(spec, families)

    site.dns.zone.set_a(site.host(2), site.ip(2, moved=True))
    cfg = site.config
    report = sync(cfg, target_groups=TargetGroups(site.elbv2, site.ec2), sources=Backwards(DnsResolver(cfg.settings.nameservers, 1.0)), clock=fake.clock, sleep=sleep)

    assert report.bindings[2].status == "changed"
    assert slept and max(slept) <= cfg.settings.poll_interval_s
