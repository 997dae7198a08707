"""An authoritative DNS server on loopback (dnslib) for node and endpoint names.

It answers the way ElastiCache's names do: the primary endpoint is a CNAME to the current
primary node's name, which has an A record. Records can change between queries
(``set_a``, ``set_cname``), and faults can be injected per name: ``servfail`` answers
SERVFAIL, ``drop`` sends no reply at all (a timeout for the client).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

__all__ = ["Zone", "LoopbackDnsServer"]

Fault = Literal["servfail", "drop"]
# A short TTL like ElastiCache's endpoints (which use 15 s or less) keeps caches honest.
DEFAULT_TTL = 5


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


@dataclass
class Zone:
    """Records by name. Thread-safe: tests and the sandbox change it while it serves."""

    ttl: int = DEFAULT_TTL
    _addresses: dict[str, list[str]] = field(default_factory=dict)
    _cnames: dict[str, str] = field(default_factory=dict)
    _faults: dict[str, Fault] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    queries: int = 0

    def set_a(self, name: str, addresses: Iterable[str] | str) -> None:
        """Set the A/AAAA records of ``name`` (replacing a CNAME)."""
        if isinstance(addresses, str):
            addresses = [addresses]
        values = [str(ipaddress.ip_address(a)) for a in addresses]
        with self._lock:
            self._cnames.pop(_norm(name), None)
            self._addresses[_norm(name)] = values

    def set_cname(self, name: str, target: str) -> None:
        with self._lock:
            self._addresses.pop(_norm(name), None)
            self._cnames[_norm(name)] = _norm(target)

    def remove(self, name: str) -> None:
        with self._lock:
            self._addresses.pop(_norm(name), None)
            self._cnames.pop(_norm(name), None)

    def set_fault(self, name: str, fault: Fault | None) -> None:
        with self._lock:
            if fault is None:
                self._faults.pop(_norm(name), None)
            else:
                self._faults[_norm(name)] = fault

    def cname_of(self, name: str) -> str | None:
        with self._lock:
            return self._cnames.get(_norm(name))

    def answer(self, request: DNSRecord) -> DNSRecord | None:
        qname = _norm(str(request.q.qname))
        qtype = request.q.qtype
        reply = request.reply()  # sets QR, AA and RD as asked
        with self._lock:
            self.queries += 1
            fault = self._faults.get(qname)
            if fault == "drop":
                return None
            if fault == "servfail":
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            name, hops = qname, 0
            while name in self._cnames and hops < 16:
                target = self._cnames[name]
                reply.add_answer(RR(name + ".", QTYPE.CNAME, rdata=CNAME(target + "."), ttl=self.ttl))
                if qtype == QTYPE.CNAME:
                    return reply
                name, hops = target, hops + 1
            if name not in self._addresses:
                # As real servers do: the CNAMEs followed, then NXDOMAIN for the end of the chain.
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            for value in self._addresses.get(name, []):
                is_v6 = ipaddress.ip_address(value).version == 6
                if qtype == QTYPE.A and not is_v6:
                    reply.add_answer(RR(name + ".", QTYPE.A, rdata=A(value), ttl=self.ttl))
                elif qtype == QTYPE.AAAA and is_v6:
                    reply.add_answer(RR(name + ".", QTYPE.AAAA, rdata=AAAA(value), ttl=self.ttl))
            return reply


class _Resolver(BaseResolver):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord | None:  # type: ignore[override]
        return self.zone.answer(request)


class _Handler(DNSHandler):
    def handle(self) -> None:
        # Sending nothing is how a "drop" fault becomes a client-side timeout.
        data, connection = self.request
        try:
            reply = self.server.resolver.resolve(DNSRecord.parse(data), self)
        except Exception:  # a malformed query gets no answer, like a real server under attack
            return
        if reply is not None:
            connection.sendto(reply.pack(), self.client_address)


class _QuietLogger(DNSLogger):
    def __init__(self) -> None:
        super().__init__(log="-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)


class LoopbackDnsServer:
    """A UDP DNS server for ``zone`` on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, zone: Zone | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.zone = zone or Zone()
        self.host = host
        self._server = DNSServer(_Resolver(self.zone), address=host, port=port, handler=_Handler, logger=_QuietLogger())
        self.port: int = self._server.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "LoopbackDnsServer":
        self._thread = threading.Thread(target=self._server.server.serve_forever, kwargs={"poll_interval": 0.1}, name="cachebridge-dns", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server.server_close()

    def __enter__(self) -> "LoopbackDnsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
