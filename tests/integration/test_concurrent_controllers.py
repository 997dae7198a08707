"""Two controllers at once, with views that disagree, never empty a target group and never
fight over it.

Each controller has its own DNS server on loopback that answers the primary endpoint with
a different node (a stale resolver during a failover), its own clients, and the same lock
table; both run ``sync`` in threads against one moto server (its own process, so the two
controllers' calls really interleave: in-process moto runs each call under the GIL without
yielding), with no delay injected anywhere. A watcher thread reads the group throughout.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cachebridge import nlb
from cachebridge.config import Binding, Config, DnsSourceSpec, Settings
from cachebridge.nlb import TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import BindingResult, sync
from cachebridge.targets import Target

from .conftest import server_client

pytestmark = pytest.mark.timeout(180)

TRIALS = 100
# Each controller runs this many passes back to back in a trial, one of them (either)
# starting up to OFFSET_S after the other: a spread of start times, so that one's reads land
# inside the other's register/deregister window (nothing is slowed down to widen it).
ROUNDS = 3
OFFSET_S = 0.08
PORT = 6379
ENDPOINT = "master.orders.abc123.euw1.cache.amazonaws.com"
TABLE = "cachebridge-locks"
OLD = Target("10.0.3.33", PORT)  # the demoted primary: neither controller wants it
VIEWS = {"A": Target("10.0.1.11", PORT), "B": Target("10.0.2.22", PORT)}


@dataclass
class Controller:
    name: str
    config: Config
    target_groups: TargetGroups
    sources: Sources

    def sync(self) -> BindingResult:
        (result,) = sync(self.config, target_groups=self.target_groups, sources=self.sources).bindings
        return result


class Watcher:
    """Reads the group's live targets as fast as it can until stopped."""

    def __init__(self, elbv2: Any, arn: str) -> None:
        self.elbv2 = elbv2
        self.arn = arn
        self.reads = 0
        self.empty_reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and self.reads < 1_000_000:
            if not live(self.elbv2, self.arn):
                self.empty_reads += 1
            self.reads += 1

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def live(elbv2: Any, arn: str) -> set[Target]:
    health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in health if d["TargetHealth"]["State"] not in ("draining", "unhealthy.draining")}


@pytest.fixture
def client(moto_server: str) -> Callable[[str], Any]:
    nlb.clear_caches()
    return lambda service: server_client(moto_server, service)


@pytest.fixture
def elbv2(client: Callable[[str], Any]) -> Any:
    return client("elbv2")


@pytest.fixture
def servers() -> Iterator[dict[str, LoopbackDnsServer]]:
    started = {name: LoopbackDnsServer(Zone(ttl=1), host="127.0.0.1").start() for name in VIEWS}
    try:
        for name, server in started.items():
            server.zone.set_a(ENDPOINT, VIEWS[name].ip)
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture
def arn(client: Callable[[str], Any], elbv2: Any) -> str:
    vpc = client("ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    name = "orders-" + uuid.uuid4().hex[:8]
    arn = elbv2.create_target_group(Name=name, Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=arn,
        Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "5"},
            {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"},
        ],
    )
    with contextlib.suppress(client("dynamodb").exceptions.ResourceInUseException):
        client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "lease_key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lease_key", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    return arn


def controllers(servers: dict[str, LoopbackDnsServer], client: Callable[[str], Any], arn: str, *, lock_table: str | None = TABLE) -> dict[str, Controller]:
    out = {}
    for name, server in servers.items():
        settings = Settings(
            nameservers=(server.address,), poll_interval_s=0.05, dns_timeout_s=0.5,
            lock_table=lock_table, controller_id=f"controller-{name}",
        )
        binding = Binding("orders-primary", DnsSourceSpec(ENDPOINT), arn, PORT, max_targets=1)
        groups = TargetGroups(client("elbv2"), client("ec2"), dynamodb=client("dynamodb"))
        out[name] = Controller(name, Config((binding,), settings), groups, Sources(DnsResolver(settings.nameservers, settings.dns_timeout_s)))
    return out


def run_together(pair: dict[str, Controller], rounds: int = 1, offset_s: float = 0.0, late: str = "B") -> dict[str, BindingResult]:
    """Both controllers' sync, ``rounds`` passes each back to back, released at the same
    instant (``late`` one ``offset_s`` later); the last pass's result of each."""
    results: dict[str, BindingResult] = {}
    failures: list[BaseException] = []
    barrier = threading.Barrier(len(pair))

    def run(controller: Controller) -> None:
        try:
            barrier.wait(timeout=10)
            if controller.name == late and offset_s:
                time.sleep(offset_s)
            for _ in range(rounds):
                results[controller.name] = controller.sync()
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(c,), name=c.name) for c in pair.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert set(results) == set(pair)
    return results


def reset(elbv2: Any, arn: str, initial: Target = OLD, dynamodb: Any = None) -> None:
    """The group holding only ``initial``, and no lease record."""
    registered = [d["Target"] for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]]
    if registered:
        elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": t["Id"], "Port": t["Port"]} for t in registered])
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": initial.ip, "Port": initial.port}])
    if dynamodb is not None:
        dynamodb.delete_item(TableName=TABLE, Key={"lease_key": {"S": arn}})


# Where each trial starts: the demoted primary (both controllers write), or one controller's
# view (the other writes, and the first sees an intruder to remove: the emptying race).
STARTS = (OLD, VIEWS["A"], VIEWS["B"])


def test_two_controllers_with_disagreeing_views_never_empty_the_group(servers, client, elbv2, arn) -> None:
    pair = controllers(servers, client, arn)
    dynamodb, watcher_elbv2 = client("dynamodb"), client("elbv2")
    outcomes: dict[tuple[str, str, str], int] = {}
    reads = 0
    rng = random.Random(8)
    for trial in range(TRIALS):
        start = STARTS[trial % len(STARTS)]
        reset(elbv2, arn, start, dynamodb)
        with Watcher(watcher_elbv2, arn) as watcher:
            results = run_together(pair, ROUNDS, rng.uniform(0, OFFSET_S), rng.choice("AB"))

        context = (trial, start, results)
        assert watcher.empty_reads == 0, f"the watcher saw an empty group: {context}"
        after = live(elbv2, arn)
        # Converged on exactly one controller's view ...
        (winner,) = [name for name, target in VIEWS.items() if after == {target}]
        loser = "B" if winner == "A" else "A"
        # ... which that controller wrote (or already had) ...
        assert results[winner].status in ("changed", "in_sync"), context
        # ... while the other wrote nothing: it had nothing to do yet when it read, or it
        # refused to undo the winner's change, naming the winner.
        assert results[loser].register == results[loser].deregister == (), context
        assert results[loser].status in ("in_sync", "error", "skipped"), context
        if results[loser].status != "in_sync":
            assert f"controller-{winner}" in (results[loser].error or "") or "another controller" in (results[loser].error or ""), context
        key = (str(start), winner, results[loser].status)
        outcomes[key] = outcomes.get(key, 0) + 1
        reads += watcher.reads

    assert sum(outcomes.values()) == TRIALS
    assert reads >= TRIALS  # the watcher really watched
    # Both orders happened: the threads really raced.
    assert any(key[0] == str(OLD) and key[1] == "A" for key in outcomes) and any(key[0] == str(OLD) and key[1] == "B" for key in outcomes), outcomes


def test_two_controllers_that_keep_disagreeing_do_not_flip_the_group(servers, client, elbv2, arn) -> None:
    pair = controllers(servers, client, arn)
    reset(elbv2, arn, OLD, client("dynamodb"))
    first = run_together(pair)
    (winner,) = [name for name, r in first.items() if r.status == "changed"]
    loser = "B" if winner == "A" else "A"
    settled = live(elbv2, arn)
    assert settled == {VIEWS[winner]}

    for _ in range(10):
        again = run_together(pair)
        assert live(elbv2, arn) == settled
        assert again[winner].status == "in_sync"
        assert again[loser].status == "error" and f"controller-{winner}" in (again[loser].error or "")
        assert again[loser].register == again[loser].deregister == ()


def test_the_loser_takes_over_when_forced(servers, client, elbv2, arn) -> None:
    pair = controllers(servers, client, arn)
    reset(elbv2, arn, OLD, client("dynamodb"))
    pair["A"].sync()
    assert live(elbv2, arn) == {VIEWS["A"]}

    (forced,) = sync(pair["B"].config, target_groups=pair["B"].target_groups, sources=pair["B"].sources, force=True).bindings

    assert forced.status == "changed"
    assert (forced.register, forced.deregister) == ((VIEWS["B"],), (VIEWS["A"],))
    assert live(elbv2, arn) == {VIEWS["B"]}
    # Now A is the one holding off.
    held = pair["A"].sync()
    assert held.status == "error" and "controller-B" in (held.error or "")
    assert live(elbv2, arn) == {VIEWS["B"]}


def test_a_lock_table_that_fails_means_register_only(servers, client, elbv2, arn) -> None:
    (controller,) = [c for c in controllers(servers, client, arn, lock_table="no-such-table").values() if c.name == "A"]
    reset(elbv2, arn, OLD, client("dynamodb"))

    result = controller.sync()

    assert result.status == "error"
    assert "no-such-table" in (result.error or "") and "deregistration held back" in (result.error or "")
    assert result.register == (VIEWS["A"],) and result.deregister == ()
    assert live(elbv2, arn) == {OLD, VIEWS["A"]}
