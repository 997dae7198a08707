"""TLS in the NLB stand-in: what a TLS listener and a TLS target group do to a connection.

- **TCP listener**: bytes pass through, TLS included; the client's TLS session is with the
  target, so it sees the target's certificate (a cache with in-transit encryption: one that
  names the cache's endpoints, never the NLB). Nothing to do here.
- **TLS listener**: the load balancer "uses a server certificate to terminate the front-end
  connection and then to decrypt requests from clients before sending them to the targets"
  (Elastic Load Balancing, Network Load Balancers, "TLS listeners for your Network Load
  Balancer"). The certificate is the listener's default one, from ACM; the stand-in reads
  its PEM and private key from moto's ACM backend, where ``ImportCertificate`` put them.
- **TLS target group**: "the load balancer establishes TLS connections with the targets
  using certificates that you install on the targets. The load balancer does not validate
  these certificates." (same guide, "Target groups for your Network Load Balancers",
  Routing configuration). So the stand-in's connection to a TLS target verifies nothing.

The data plane asks for an ``ssl.SSLContext`` per listener and per target group, and gets
``None`` for plain TCP.
"""

from __future__ import annotations

import logging
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["listener_context", "target_context"]

log = logging.getLogger("cachebridge.sandbox.nlb")

_lock = threading.Lock()
_server_contexts: dict[tuple[str, bytes], ssl.SSLContext] = {}


def listener_context(backend: Any, listener_arn: str, account_id: str, region: str) -> ssl.SSLContext | None:
    """The server-side context of a TLS listener (its default certificate), ``None`` for TCP.

    Raises ``ValueError`` when the listener is TLS but its certificate cannot be served
    (not in ACM, no private key): the data plane reports that as a listener error."""
    listener = _find_listener(backend, listener_arn)
    if listener is None or str(getattr(listener, "protocol", "TCP")).upper() != "TLS":
        return None
    certificates = list(getattr(listener, "certificates", None) or [])
    arn = _certificate_arn(certificates[0]) if certificates else None
    if not arn:
        raise ValueError("TLS listener without a certificate")
    cert_pem, key_pem, chain_pem = _acm_pem(arn, account_id, region)
    with _lock:
        cached = _server_contexts.get((arn, cert_pem))
        if cached is not None:
            return cached
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # load_cert_chain reads files only; the PEMs live in a private temporary directory
        # just long enough to be loaded.
        with tempfile.TemporaryDirectory(prefix="cachebridge-nlb-tls-") as tmp:
            cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert_file.write_bytes(cert_pem + (b"\n" + chain_pem if chain_pem else b""))
            key_file.write_bytes(key_pem)
            key_file.chmod(0o600)
            context.load_cert_chain(cert_file, key_file)
        _server_contexts[(arn, cert_pem)] = context
        return context


def target_context(backend: Any, target_group_arn: str | None) -> ssl.SSLContext | None:
    """The client-side context towards the targets of a TLS target group, ``None`` for TCP.
    Verifies nothing, as the load balancer does not validate target certificates."""
    group = backend.target_groups.get(target_group_arn) if target_group_arn else None
    if group is None or str(getattr(group, "protocol", "TCP")).upper() != "TLS":
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no trust store to load: nothing is verified
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _find_listener(backend: Any, listener_arn: str) -> Any:
    for lb in list(backend.load_balancers.values()):
        listener = lb.listeners.get(listener_arn)
        if listener is not None:
            return listener
    return None


def _certificate_arn(entry: Any) -> str | None:
    if isinstance(entry, dict):
        return entry.get("CertificateArn") or entry.get("certificate_arn")
    return getattr(entry, "arn", None) or (str(entry) if entry else None)


def _acm_pem(arn: str, account_id: str, region: str) -> tuple[bytes, bytes, bytes | None]:
    from moto.acm.models import acm_backends

    try:
        bundle = acm_backends[account_id][region].get_certificate(arn)
    except Exception as exc:  # moto's AWSResourceNotFoundException and kin
        raise ValueError(f"certificate {arn} is not in ACM: {exc}") from None
    cert, key, chain = getattr(bundle, "cert", None), getattr(bundle, "key", None), getattr(bundle, "chain", None)
    if not cert or not key:
        raise ValueError(f"certificate {arn} has no private key the stand-in can serve (import it with ImportCertificate)")
    return _bytes(cert), _bytes(key), _bytes(chain) if chain else None


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
