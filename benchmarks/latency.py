"""Loopback proxies that add a fixed latency per AWS call and per DNS query, and count them.

Used by ``sync_pass.py --latency``: moto and the loopback DNS server answer in well under
a millisecond, a real API in 10-50 ms, which is what makes one-call-after-another passes
slow. ``LatencyProxy`` sits between botocore and moto server (TCP): each new request on a
connection waits ``delay_s`` before it is forwarded, and its operation name (``Action=``
of the query protocol, ``X-Amz-Target`` of the JSON one) is counted. ``DnsLatencyProxy``
does the same for DNS over UDP.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter

__all__ = ["LatencyProxy", "DnsLatencyProxy"]

_ACTION = re.compile(rb"(?:Action=|X-Amz-Target: \w+\.)([A-Za-z]+)")


class LatencyProxy:
    """TCP proxy on 127.0.0.1 to ``upstream`` (host, port); ``calls`` counts requests by
    operation."""

    def __init__(self, upstream: tuple[str, int], delay_s: float) -> None:
        self.upstream = upstream
        self.delay_s = delay_s
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LatencyProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._server.close()

    def take(self) -> dict[str, int]:
        with self._lock:
            out = dict(sorted(self.calls.items()))
            self.calls.clear()
        return out

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            state = {"new_request": True, "named": False}
            threading.Thread(target=self._requests, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, state), daemon=True).start()

    def _requests(self, src: socket.socket, dst: socket.socket, state: dict[str, bool]) -> None:
        try:
            while data := src.recv(65536):
                if state["new_request"]:
                    state["new_request"], state["named"] = False, False
                    time.sleep(self.delay_s)  # the round trip a real API adds
                if not state["named"]:
                    match = _ACTION.search(data)
                    if match:
                        state["named"] = True
                        with self._lock:
                            self.calls[match.group(1).decode()] += 1
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src, dst)

    def _responses(self, src: socket.socket, dst: socket.socket, state: dict[str, bool]) -> None:
        try:
            while data := src.recv(65536):
                state["new_request"] = True
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src, dst)


class DnsLatencyProxy:
    """UDP proxy on 127.0.0.1 to a DNS server at ``upstream``; ``queries`` counts them."""

    def __init__(self, upstream: tuple[str, int], delay_s: float) -> None:
        self.upstream = upstream
        self.delay_s = delay_s
        self.queries = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "DnsLatencyProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def take(self) -> int:
        with self._lock:
            out, self.queries = self.queries, 0
        return out

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, client = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.queries += 1
            threading.Thread(target=self._answer, args=(query, client), daemon=True).start()

    def _answer(self, query: bytes, client: tuple[str, int]) -> None:
        time.sleep(self.delay_s)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
            upstream.settimeout(2.0)
            try:
                upstream.sendto(query, self.upstream)
                answer, _ = upstream.recvfrom(4096)
                self._sock.sendto(answer, client)
            except OSError:
                pass  # the resolver times out and says so


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.close()
        except OSError:
            pass
