"""The cluster address map and its client snippets (pure)."""

from __future__ import annotations

import ast

from cachebridge.address_map import CLUSTER_CLIENTS, TESTED, NodeRoute, build

NLB = "sessions-0123456789.elb.eu-west-1.amazonaws.com"
ROUTES = (
    NodeRoute("s-0002-001", "10.0.10.5:6379", NLB, 16382),
    NodeRoute("s-0001-001", "10.0.2.7:6379", NLB, 16380),
    NodeRoute("s-0001-002", "10.0.2.8:6379", NLB, 16381),
)


def test_the_map_is_announced_address_to_nlb_address_sorted_by_address() -> None:
    m = build(NLB, 6379, ROUTES)
    assert list(m.mapping().items()) == [
        ("10.0.2.7:6379", f"{NLB}:16380"),
        ("10.0.2.8:6379", f"{NLB}:16381"),
        ("10.0.10.5:6379", f"{NLB}:16382"),
    ]
    assert m.to_json()["nodes"]["s-0002-001"] == {"announced": "10.0.10.5:6379", "nlb": f"{NLB}:16382", "health": None}


def test_one_snippet_per_cluster_client_each_saying_whether_it_is_tested() -> None:
    m = build(NLB, 6379, ROUTES)
    assert tuple(c.client for c in m.clients) == ("redis-py", "ioredis", "node-redis", "Lettuce", "go-redis")
    assert set(CLUSTER_CLIENTS) == {c.client for c in m.clients}
    for c in m.clients:
        assert ("tested against the sandbox" in c.note) == (c.client in TESTED)
        assert ("untested" in c.note) == (c.client not in TESTED)
        for announced, nlb in m.mapping().items():
            ip, port = announced.split(":")
            assert ip in c.code and nlb.split(":")[1] in c.code


def test_the_redis_py_snippet_is_python_whose_map_is_the_map() -> None:
    code = build(NLB, 6379, ROUTES).clients[0].code
    tree = ast.parse(code)
    nat = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "NAT")  # type: ignore[attr-defined]
    value = ast.literal_eval(nat.value)
    assert value == {("10.0.2.7", 6379): (NLB, 16380), ("10.0.2.8", 6379): (NLB, 16381), ("10.0.10.5", 6379): (NLB, 16382)}
    assert f'RedisCluster(host="{NLB}", port=6379, address_remap=' in code


def test_an_address_announced_twice_is_a_warning() -> None:
    m = build(NLB, 6379, (*ROUTES, NodeRoute("s-0003-001", "10.0.2.7:6379", NLB, 16383)))
    assert any("10.0.2.7:6379 is announced by" in w for w in m.warnings)
