"""The dns:// source against a real DNS server on loopback (``sandbox.dns``)."""

from __future__ import annotations

import ipaddress
import time

import pytest

from cachebridge.config import DnsSourceSpec, parse_nameserver
from cachebridge.errors import EmptySource, SourceError, SourceNotFound, SourceTimeout
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.sources import DnsResolver, Reading, Sources

pytestmark = pytest.mark.timeout(60)

# Answers on loopback take well under a millisecond; the generous default keeps a loaded
# machine from turning a success case into a timeout.
ANSWER_TIMEOUT_S = 2.0
# For the cases that must wait for a silent server.
SHORT_TIMEOUT_S = 0.3
# How long a read against silent servers may take: dnspython gets ``timeout`` per server
# for each of the A and AAAA queries, plus scheduling slack.
SILENT_BOUND_S = 5.0

HOST = "node-001.orders.example.test"


@pytest.fixture
def resolver(dns_server: LoopbackDnsServer) -> DnsResolver:
    return DnsResolver([dns_server.address], timeout=ANSWER_TIMEOUT_S)


def _normalised(address: str) -> str:
    return str(ipaddress.ip_address(address))


# -- answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        pytest.param(["10.0.0.3", "10.0.0.1"], ("10.0.0.1", "10.0.0.3"), id="a"),
        pytest.param(["fd00::2", "fd00::1"], ("fd00::1", "fd00::2"), id="aaaa"),
        pytest.param(["fd00::1", "10.0.0.2", "10.0.0.1"], ("10.0.0.1", "10.0.0.2", "fd00::1"), id="a-and-aaaa"),
    ],
)
def test_resolves_every_address_record(zone: Zone, resolver: DnsResolver, records: list[str], expected: tuple[str, ...]) -> None:
    zone.set_a(HOST, records)

    res = resolver.resolve(HOST)

    assert res.host == HOST
    assert res.addresses == expected
    assert res.chain == (HOST,)


@pytest.mark.parametrize("hops", [2, 3])
def test_cname_chain_reports_the_chain_and_the_final_names_addresses(zone: Zone, resolver: DnsResolver, hops: int) -> None:
    names = ["master.orders.example.test"] + [f"hop{i}.example.test" for i in range(1, hops)] + [HOST]
    for name, target in zip(names, names[1:]):
        zone.set_cname(name, target)
    zone.set_a(HOST, ["10.0.0.7", "fd00::7"])

    res = resolver.resolve(names[0])

    assert len(names) == hops + 1
    assert res.chain == tuple(names)
    assert res.addresses == ("10.0.0.7", "fd00::7")


def test_a_changed_record_is_seen_on_the_next_read(zone: Zone, resolver: DnsResolver) -> None:
    zone.ttl = 300
    zone.set_a(HOST, "10.0.0.1")
    assert resolver.resolve(HOST).addresses == ("10.0.0.1",)

    zone.set_a(HOST, "10.0.0.2")

    assert resolver.resolve(HOST).addresses == ("10.0.0.2",)


def test_a_flipped_cname_is_seen_on_the_next_read(zone: Zone, resolver: DnsResolver) -> None:
    endpoint = "master.orders.example.test"
    zone.ttl = 300
    zone.set_a("node-001.example.test", "10.0.0.1")
    zone.set_a("node-002.example.test", "10.0.0.2")
    zone.set_cname(endpoint, "node-001.example.test")
    first = resolver.resolve(endpoint)

    zone.set_cname(endpoint, "node-002.example.test")
    second = resolver.resolve(endpoint)

    assert (first.chain, first.addresses) == ((endpoint, "node-001.example.test"), ("10.0.0.1",))
    assert (second.chain, second.addresses) == ((endpoint, "node-002.example.test"), ("10.0.0.2",))


def test_reports_the_answers_ttl(zone: Zone, resolver: DnsResolver) -> None:
    zone.ttl = 42
    zone.set_a(HOST, ["10.0.0.1", "fd00::1"])

    assert resolver.resolve(HOST).ttl == 42


def test_addresses_are_sorted_numerically_and_normalised(zone: Zone, resolver: DnsResolver) -> None:
    zone.set_a(HOST, ["fd00::10", "10.0.0.10", "::ffff:10.0.0.1", "fd00:0:0:0::9", "10.0.0.9", "10.0.0.9"])

    res = resolver.resolve(HOST)

    assert res.addresses == ("10.0.0.9", "10.0.0.10", _normalised("::ffff:10.0.0.1"), "fd00::9", "fd00::10")
    assert all(a == _normalised(a) for a in res.addresses)


# -- failures -----------------------------------------------------------------------------


def test_nxdomain_is_source_not_found(resolver: DnsResolver) -> None:
    with pytest.raises(SourceNotFound, match=r"dns://nope\.example\.test: NXDOMAIN"):
        resolver.resolve("nope.example.test")


def test_servfail_is_a_source_error_not_a_missing_name(zone: Zone, resolver: DnsResolver) -> None:
    zone.set_a(HOST, "10.0.0.1")
    zone.set_fault(HOST, "servfail")

    with pytest.raises(SourceError) as caught:
        resolver.resolve(HOST)

    assert not isinstance(caught.value, (SourceNotFound, SourceTimeout, EmptySource))
    assert HOST in str(caught.value)


@pytest.mark.parametrize("target", [HOST, "alias.example.test"], ids=["no-records", "cname-to-no-records"])
def test_a_name_without_addresses_is_an_empty_source(zone: Zone, resolver: DnsResolver, target: str) -> None:
    zone.set_a(HOST, [])
    zone.set_cname("alias.example.test", HOST)

    with pytest.raises(EmptySource, match="no A or AAAA record"):
        resolver.resolve(target)


def test_a_stopped_server_is_a_timeout(dns_server: LoopbackDnsServer) -> None:
    dns_server.zone.set_a(HOST, "10.0.0.1")
    resolver = DnsResolver([dns_server.address], timeout=SHORT_TIMEOUT_S)
    assert resolver.resolve(HOST).addresses == ("10.0.0.1",)

    dns_server.stop()
    started = time.monotonic()
    with pytest.raises(SourceTimeout, match=dns_server.address):
        resolver.resolve(HOST)

    assert time.monotonic() - started < SILENT_BOUND_S


def test_a_server_that_drops_the_query_is_a_timeout(dns_server: LoopbackDnsServer) -> None:
    dns_server.zone.set_a(HOST, "10.0.0.1")
    dns_server.zone.set_fault(HOST, "drop")
    resolver = DnsResolver([dns_server.address], timeout=SHORT_TIMEOUT_S)

    started = time.monotonic()
    with pytest.raises(SourceTimeout):
        resolver.resolve(HOST)

    assert time.monotonic() - started < SILENT_BOUND_S


@pytest.mark.parametrize("failure", ["stopped", "drop", "servfail"])
def test_the_next_nameserver_answers_when_the_first_fails(dns_server: LoopbackDnsServer, failure: str) -> None:
    dns_server.zone.set_a(HOST, ["10.0.0.1", "fd00::1"])
    first = LoopbackDnsServer(Zone(), host="127.0.0.1")
    try:
        if failure == "stopped":
            first.stop()
        else:
            first.start()
            first.zone.set_a(HOST, "10.9.9.9")
            first.zone.set_fault(HOST, failure)  # type: ignore[arg-type]
        resolver = DnsResolver([first.address, dns_server.address], timeout=SHORT_TIMEOUT_S)

        started = time.monotonic()
        res = resolver.resolve(HOST)
        elapsed = time.monotonic() - started
    finally:
        first.stop()

    assert res.addresses == ("10.0.0.1", "fd00::1")
    assert elapsed < SILENT_BOUND_S


def test_every_nameserver_silent_is_a_timeout(dns_server: LoopbackDnsServer) -> None:
    other = LoopbackDnsServer(Zone(), host="127.0.0.1").start()
    try:
        for srv in (dns_server, other):
            srv.zone.set_a(HOST, "10.0.0.1")
            srv.zone.set_fault(HOST, "drop")
        resolver = DnsResolver([dns_server.address, other.address], timeout=SHORT_TIMEOUT_S)

        started = time.monotonic()
        with pytest.raises(SourceTimeout):
            resolver.resolve(HOST)
        elapsed = time.monotonic() - started
    finally:
        other.stop()

    assert elapsed < SILENT_BOUND_S


# -- through Sources ----------------------------------------------------------------------


def test_sources_read_gives_a_reading_with_the_chain(zone: Zone, dns_server: LoopbackDnsServer) -> None:
    endpoint = "master.orders.example.test"
    zone.ttl = 15
    zone.set_cname(endpoint, HOST)
    zone.set_a(HOST, ["fd00::1", "10.0.0.12", "10.0.0.2"])
    sources = Sources(DnsResolver([parse_nameserver(dns_server.address)], timeout=ANSWER_TIMEOUT_S))

    reading = sources.read(DnsSourceSpec(endpoint))

    assert reading == Reading(
        source=f"dns://{endpoint}",
        addresses=("10.0.0.2", "10.0.0.12", "fd00::1"),
        ttl=15,
        detail={"chain": [endpoint, HOST]},
    )


def test_sources_read_sees_a_change_between_reads(zone: Zone, resolver: DnsResolver) -> None:
    zone.ttl = 300
    zone.set_a(HOST, "10.0.0.1")
    sources = Sources(resolver)
    spec = DnsSourceSpec(HOST)
    assert sources.read(spec).addresses == ("10.0.0.1",)

    zone.set_a(HOST, "10.0.0.2")

    assert sources.read(spec).addresses == ("10.0.0.2",)


@pytest.mark.parametrize(
    ("fault", "error"),
    [(None, SourceNotFound), ("servfail", SourceError), ("drop", SourceTimeout)],
    ids=["nxdomain", "servfail", "drop"],
)
def test_sources_read_raises_the_resolvers_error(dns_server: LoopbackDnsServer, fault: str | None, error: type[SourceError]) -> None:
    name = "gone.example.test" if fault is None else HOST
    if fault is not None:
        dns_server.zone.set_a(HOST, "10.0.0.1")
        dns_server.zone.set_fault(HOST, fault)  # type: ignore[arg-type]
    sources = Sources(DnsResolver([dns_server.address], timeout=SHORT_TIMEOUT_S))

    with pytest.raises(error) as caught:
        sources.read(DnsSourceSpec(name))

    assert f"dns://{name}" in str(caught.value)
    if error is SourceError:
        assert not isinstance(caught.value, (SourceNotFound, SourceTimeout))
