"""Target identity, parsing and health predicates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachebridge.targets import Target, TargetHealth, TargetState


# -- normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_ip", "normal"),
    [
        pytest.param("10.0.0.1", "10.0.0.1", id="ipv4-unchanged"),
        pytest.param("  10.0.0.1\n", "10.0.0.1", id="ipv4-whitespace-stripped"),
        pytest.param("2001:DB8:0:0:0:0:0:1", "2001:db8::1", id="ipv6-compressed-lowercase"),
        pytest.param("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", id="ipv6-leading-zeros"),
        pytest.param("FD00:0:0:0:0:0:0:2", "fd00::2", id="ipv6-ula"),
        pytest.param("0:0:0:0:0:0:0:1", "::1", id="ipv6-loopback"),
    ],
)
def test_ip_is_normalised(given_ip: str, normal: str) -> None:
    assert Target(given_ip, 6379).ip == normal


def test_spellings_of_one_address_are_one_target() -> None:
    a = Target("2001:db8::1", 6379)
    b = Target("2001:0DB8:0000::0001", 6379)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


@pytest.mark.parametrize(
    "bad_ip",
    [
        pytest.param("010.0.0.1", id="ipv4-leading-zero-octet"),
        pytest.param("10.0.0.256", id="ipv4-octet-too-big"),
        pytest.param("10.0.0", id="ipv4-three-octets"),
        pytest.param("", id="empty"),
        pytest.param("cache.example.com", id="hostname"),
        pytest.param("10.0.0.1:6379", id="ip-with-port"),
        pytest.param("2001:db8:::1", id="ipv6-triple-colon"),
        pytest.param("[2001:db8::1]", id="ipv6-bracketed"),
        pytest.param("10.0.0.0/24", id="network"),
    ],
)
def test_invalid_ip_is_rejected(bad_ip: str) -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        Target(bad_ip, 6379)


@pytest.mark.parametrize(
    "bad_port",
    [
        pytest.param(0, id="zero"),
        pytest.param(-1, id="negative"),
        pytest.param(65536, id="too-big"),
        pytest.param(70000, id="far-too-big"),
        pytest.param("6379", id="string"),
        pytest.param(6379.0, id="float"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
    ],
)
def test_invalid_port_is_rejected(bad_port: object) -> None:
    with pytest.raises(ValueError, match="port"):
        Target("10.0.0.1", bad_port)  # type: ignore[arg-type]


@pytest.mark.parametrize("port", [1, 6379, 65535])
def test_port_bounds_are_inclusive(port: int) -> None:
    assert Target("10.0.0.1", port).port == port


def test_target_is_frozen() -> None:
    target = Target("10.0.0.1", 6379)
    with pytest.raises(AttributeError):
        target.port = 6380  # type: ignore[misc]


def test_identity_includes_port() -> None:
    assert Target("10.0.0.1", 6379) != Target("10.0.0.1", 6380)
    assert len({Target("10.0.0.1", 6379), Target("10.0.0.1", 6380)}) == 2


def test_version() -> None:
    assert Target("10.0.0.1", 1).version == 4
    assert Target("fd00::1", 1).version == 6


# -- parse / str -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("10.0.0.1:6379", Target("10.0.0.1", 6379), id="ipv4"),
        pytest.param(" 10.0.0.1:6379 ", Target("10.0.0.1", 6379), id="ipv4-whitespace"),
        pytest.param("[2001:db8::1]:6379", Target("2001:db8::1", 6379), id="ipv6-bracketed"),
        pytest.param("[2001:DB8:0::1]:443", Target("2001:db8::1", 443), id="ipv6-bracketed-uncompressed"),
        pytest.param("[::1]:1", Target("::1", 1), id="ipv6-loopback-port-1"),
    ],
)
def test_parse(text: str, expected: Target) -> None:
    assert Target.parse(text) == expected


@pytest.mark.parametrize(
    ("target", "text"),
    [
        pytest.param(Target("10.0.0.1", 6379), "10.0.0.1:6379", id="ipv4"),
        pytest.param(Target("2001:DB8::1", 6379), "[2001:db8::1]:6379", id="ipv6-bracketed"),
    ],
)
def test_str(target: Target, text: str) -> None:
    assert str(target) == text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("10.0.0.1", id="no-port"),
        pytest.param("10.0.0.1:", id="empty-port"),
        pytest.param("10.0.0.1:abc", id="port-not-digits"),
        pytest.param("10.0.0.1:-1", id="negative-port"),
        pytest.param("10.0.0.1:+80", id="signed-port"),
        pytest.param("10.0.0.1:0", id="port-zero"),
        pytest.param("10.0.0.1:65536", id="port-too-big"),
        pytest.param("10.0.0.1:70000", id="port-far-too-big"),
        pytest.param("[2001:db8::1]", id="ipv6-no-port"),
        pytest.param("[2001:db8::1]6379", id="ipv6-missing-colon"),
        pytest.param("[2001:db8::1]:", id="ipv6-empty-port"),
        pytest.param("cache.example.com:6379", id="hostname"),
        pytest.param("010.0.0.1:6379", id="ipv4-leading-zero"),
        pytest.param("", id="empty"),
        pytest.param(":6379", id="no-host"),
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Target.parse(text)


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: a.exploded)
ports = st.integers(min_value=1, max_value=65535)


@settings(max_examples=200, deadline=None)
@given(ip=st.one_of(ipv4, ipv6), port=ports)
def test_str_parse_round_trip(ip: str, port: int) -> None:
    target = Target(ip, port)
    text = str(target)
    assert Target.parse(text) == target
    assert str(Target.parse(text)) == text
    if target.version == 6:
        assert text.startswith("[") and f"]:{port}" in text


@settings(max_examples=200, deadline=None)
@given(ip=ipv6, port=ports)
def test_ipv6_spellings_normalise_to_one_target(ip: str, port: int) -> None:
    assert Target(ip, port) == Target(ip.upper(), port)
    assert Target(ip, port).ip == Target(ip.upper(), port).ip
    assert len(Target(ip, port).ip) <= len(ip)


@settings(max_examples=200, deadline=None)
@given(a=st.tuples(st.one_of(ipv4, ipv6), ports), b=st.tuples(st.one_of(ipv4, ipv6), ports))
def test_equality_is_ip_and_port(a: tuple[str, int], b: tuple[str, int]) -> None:
    same_ip = Target(a[0], 1) == Target(b[0], 1)
    assert (Target(*a) == Target(*b)) == (same_ip and a[1] == b[1])


# -- health ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "draining"),
    [
        (TargetState.DRAINING, True),
        (TargetState.UNHEALTHY_DRAINING, True),
        (TargetState.HEALTHY, False),
        (TargetState.UNHEALTHY, False),
        (TargetState.INITIAL, False),
        (TargetState.UNUSED, False),
        (TargetState.UNAVAILABLE, False),
    ],
)
def test_draining(state: TargetState, draining: bool) -> None:
    assert TargetHealth(state).draining is draining


@pytest.mark.parametrize("state", list(TargetState))
def test_only_healthy_is_serving(state: TargetState) -> None:
    assert TargetHealth(state).serving is (state is TargetState.HEALTHY)


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("healthy", TargetState.HEALTHY),
        ("draining", TargetState.DRAINING),
        ("unhealthy.draining", TargetState.UNHEALTHY_DRAINING),
        ("initial", TargetState.INITIAL),
        ("unused", TargetState.UNUSED),
        ("unhealthy", TargetState.UNHEALTHY),
        ("unavailable", TargetState.UNAVAILABLE),
    ],
)
def test_state_parse_known(raw: str, state: TargetState) -> None:
    assert TargetState.parse(raw) is state


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("HEALTHY", id="wrong-case"),
        pytest.param("warming", id="unknown"),
        pytest.param("unhealthy.warming", id="unknown-dotted"),
    ],
)
def test_state_parse_unknown_is_unavailable(raw: str | None) -> None:
    state = TargetState.parse(raw)
    assert state is TargetState.UNAVAILABLE
    assert not TargetHealth(state).draining
    assert not TargetHealth(state).serving
