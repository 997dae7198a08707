"""``endpoints.describe``: where a client connects and which TLS name it verifies."""

from __future__ import annotations

import pytest

from cachebridge import endpoints
from cachebridge.deploy import template

NLB = "orders-nlb-0123456789abcdef.elb.eu-west-1.amazonaws.com"
CACHE = "master.orders.abc123.euw1.cache.amazonaws.com"


def _code(e: endpoints.Endpoint, client: str) -> str:
    return next(h.code for h in e.clients if h.client == client)


def test_tcp_listener_to_a_tls_cache_verifies_the_cache_name_not_the_nlb() -> None:
    e = endpoints.describe(nlb_dns_name=NLB, port=6379, listener_protocol="TCP", cache_tls=True, cache_endpoint=CACHE)
    assert (e.host, e.port, e.tls, e.server_name) == (NLB, 6379, True, CACHE)
    assert [h.client for h in e.clients] == list(endpoints.CLIENTS)
    assert f"-h {NLB} -p 6379 --tls --sni {CACHE}" in _code(e, "redis-cli")
    assert f'servername: "{CACHE}"' in _code(e, "ioredis")
    assert f'ServerName: "{CACHE}"' in _code(e, "go-redis")
    for java in ("Lettuce", "Jedis"):
        assert f'new SNIHostName("{CACHE}")' in _code(e, java)
        assert 'setEndpointIdentificationAlgorithm("HTTPS")' in _code(e, java)
    assert f'self.host = self.host, "{CACHE}"' in _code(e, "redis-py")
    assert 'ssl_cert_reqs="required"' in _code(e, "redis-py")
    # Nothing offered turns verification off.
    for how in e.clients:
        assert "--insecure" not in how.code and "CERT_NONE" not in how.code and "InsecureSkipVerify" not in how.code


def test_tcp_listener_to_a_plain_cache_speaks_no_tls() -> None:
    e = endpoints.describe(nlb_dns_name=NLB, port=6380, listener_protocol="TCP", cache_tls=False, cache_endpoint=CACHE)
    assert (e.host, e.tls, e.server_name) == (NLB, False, None)
    assert _code(e, "redis-cli") == f"redis-cli -h {NLB} -p 6380 PING"


def test_tls_listener_connects_to_your_name() -> None:
    e = endpoints.describe(nlb_dns_name=NLB, port=6379, listener_protocol="TLS", cache_tls=True,
                           cache_endpoint=CACHE, certificate_name="redis.example.com")
    assert (e.host, e.tls, e.server_name) == ("redis.example.com", True, "redis.example.com")
    assert CACHE not in " ".join(h.code for h in e.clients)
    assert _code(e, "redis-cli") == "redis-cli -h redis.example.com -p 6379 --tls PING"


def test_wildcard_certificate_asks_for_the_name() -> None:
    e = endpoints.describe(nlb_dns_name=NLB, port=6379, listener_protocol="TLS", cache_tls=True, certificate_name="*.example.com")
    assert e.host == "YOUR-NAME.example.com"
    assert any("--server-name" in w for w in e.warnings)
    given = endpoints.describe(nlb_dns_name=NLB, port=6379, listener_protocol="TLS", cache_tls=True,
                               certificate_name="*.example.com", server_name="cache.example.com")
    assert (given.host, given.warnings) == ("cache.example.com", ())


def test_ca_file_goes_into_the_snippets_quoted() -> None:
    e = endpoints.describe(nlb_dns_name=NLB, port=6379, listener_protocol="TCP", cache_tls=True,
                           cache_endpoint=CACHE, ca_file="/etc/my ca.pem")
    assert "--cacert '/etc/my ca.pem'" in _code(e, "redis-cli")
    assert 'ssl_ca_certs="/etc/my ca.pem"' in _code(e, "redis-py")


def test_unknown_listener_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="UDP"):
        endpoints.describe(nlb_dns_name=NLB, port=6379, listener_protocol="UDP", cache_tls=True)


def test_stack_outputs_carry_what_endpoints_reads() -> None:
    outputs = template.build()["Outputs"]
    assert outputs["ListenerProtocol"]["Value"] == {"Ref": "ListenerProtocol"}
    assert outputs["ListenerPort"]["Value"] == {"Ref": "ListenerPort"}
    assert outputs["TargetProtocol"]["Value"] == {"Ref": "TargetProtocol"}
    assert outputs["ReplicationGroupId"]["Value"] == {"Ref": "ReplicationGroupId"}
    assert outputs["CertificateArn"] == {"Condition": "ListenerIsTls", "Description": outputs["CertificateArn"]["Description"],
                                         "Value": {"Ref": "CertificateArn"}}
