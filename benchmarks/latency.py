"""Loopback proxies that add a fixed latency per AWS call and per DNS query, count them, and
(optionally) throttle AWS calls as AWS documents it.

Used by ``sync_pass.py --latency`` and ``throttled_pass.py``: moto and the loopback DNS
server answer in well under a millisecond, a real API in 10-50 ms, which is what makes
one-call-after-another passes slow. ``LatencyProxy`` sits between botocore and moto server
(TCP): each request on a connection waits ``delay_s`` before it is forwarded, and its
operation name (``Action=`` of the query protocol, ``X-Amz-Target`` of the JSON one) is
counted. ``DnsLatencyProxy`` does the same for DNS over UDP.

Throttling (``throttle=Throttle(PROFILES["documented"])``): AWS meters API calls per account
and Region with token buckets. A request whose bucket is empty is answered by the proxy
itself, the way the service answers it (HTTP 400, the query protocol's XML error,
``ThrottlingException`` / ``Rate exceeded``), and never reaches moto; botocore's retry logic
sees what it would see on AWS. Which calls are metered, and how, is ``PROFILES``:

- ``documented`` (the default of the scripts): only what AWS documents, with its source.

  * Elastic Load Balancing API v2, non-mutating actions (``Describe*``: DescribeTargetHealth,
    DescribeTargetGroups, DescribeListeners, DescribeTags ...): one bucket per account and
    Region, 40 tokens, refilled at 10 tokens a second. "For example, the token bucket size
    for non-mutating API actions is 40 tokens. You can make up to 40 Describe* requests in
    one second." (ELB User Guide, "Request throttling for the Elastic Load Balancing API",
    https://docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-api-throttling.html).
    The refill: the stored English copy is cut before it; the stored Chinese translation of
    the same page (.../zh_cn/elasticloadbalancing/latest/userguide/elb-api-throttling.html)
    says "例如,非变更 API 操作的存储桶大小为 40 个令牌,填充速率为每秒 10 个令牌" (for example,
    40 tokens, refill rate 10 tokens a second). The guide gives these figures as its
    example; a per-action table, if the page has one, was not in the stored copies, so the
    example is the figure modelled. The bucket starts full; "a set number of tokens is
    added back every second" (same page): the refill comes in whole-second steps, as written.
  * ELB API v2 mutating actions (RegisterTargets, DeregisterTargets, ModifyListener): the
    stored copy of the same page gives no figure; not modelled (never throttled).
  * ElastiCache (DescribeReplicationGroups ...): no throttling figure found in the stored
    ElastiCache docs; not modelled.
  * DynamoDB (the lease table, on-demand): "By default, maximum throughput settings don't
    apply and your on-demand throughput rate is bounded by 40,000 table-level read and
    write throughput AWS service quota for all tables in the account." (DynamoDB Developer
    Guide, "DynamoDB maximum throughput for on-demand tables",
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html):
    a pass makes a handful of lease writes, far below; not modelled.
  * EC2 (one DescribeVpcs per VPC per function instance, cached): not modelled.
- ``none``: nothing throttled (the latency alone).

The ELB bucket is the account's, shared with the console, Terraform and every other caller
in the account and Region ("API requests are subject to the request limits whether you call
them or they are called on your behalf", same page; EC2, ECS, EC2 Auto Scaling and
CloudFormation calling on your behalf have buckets of their own). ``others_per_s`` models them as a
steady draw on the refill; the default is 0 (the controller alone in the account), which is
the kindest case: no figure for what others use exists.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "LatencyProxy",
    "DnsLatencyProxy",
    "BucketSpec",
    "TokenBucket",
    "Throttle",
    "PROFILES",
    "action_class",
    "throttling_response",
]

_ACTION = re.compile(rb"(?:Action=|X-Amz-Target: \w+\.)([A-Za-z]+)")
# SigV4's credential scope names the service: Credential=AKID/20261201/us-east-1/elasticloadbalancing/aws4_request
_SERVICE = re.compile(rb"Credential=[^/,]+/\d{8}/[^/,]+/([a-z0-9-]+)/aws4_request")
_CONTENT_LENGTH = re.compile(rb"^content-length:\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)

ELB_DOC = "https://docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-api-throttling.html"


@dataclass(frozen=True)
class BucketSpec:
    """One token bucket: ``capacity`` tokens, ``refill_per_s`` added back each second."""

    capacity: int
    refill_per_s: float
    source: str


# Action classes -> buckets. See the module docstring for what is not here and why.
PROFILES: dict[str, dict[str, BucketSpec]] = {
    "documented": {
        "elbv2-describe": BucketSpec(capacity=40, refill_per_s=10.0, source=ELB_DOC + " (non-mutating actions: 40 tokens, 10 per second)"),
    },
    "none": {},
}


def action_class(service: str | None, action: str | None) -> str | None:
    """The bucket class a call draws on (a key of a profile), or None when none is modelled."""
    if service == "elasticloadbalancing" and action:
        return "elbv2-describe" if action.startswith("Describe") else "elbv2-mutate"
    return None


class TokenBucket:
    """A token bucket as the ELB user guide describes it: it starts full; each request takes
    one token or is throttled; every whole second since the bucket was made, ``refill``
    tokens are added back, never past ``capacity``. ``clock`` is injectable (tests)."""

    def __init__(self, capacity: int, refill_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1 or refill_per_s < 0:
            raise ValueError(f"a bucket needs capacity >= 1 and refill >= 0, not {capacity}/{refill_per_s}")
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._clock = clock
        self._start = clock()
        self._seconds = 0
        self._tokens = float(capacity)
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens

    def take(self) -> bool:
        """One token if there is one (True), else False: the request is throttled."""
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    def _refill(self) -> None:
        seconds = int(self._clock() - self._start)
        if seconds > self._seconds:
            self._tokens = min(float(self.capacity), self._tokens + (seconds - self._seconds) * self.refill_per_s)
            self._seconds = seconds


class Throttle:
    """The buckets of one profile, for one account and Region; counts what it throttled.

    ``others_per_s``: what the account's other callers draw from each bucket's refill."""

    def __init__(
        self,
        profile: Mapping[str, BucketSpec],
        *,
        others_per_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        code: str = "ThrottlingException",
    ) -> None:
        self.profile = dict(profile)
        self.code = code
        self.buckets = {
            name: TokenBucket(spec.capacity, max(0.0, spec.refill_per_s - others_per_s), clock)
            for name, spec in self.profile.items()
        }
        self.throttled: Counter[str] = Counter()
        self._lock = threading.Lock()

    def admit(self, service: str | None, action: str | None) -> bool:
        bucket = self.buckets.get(action_class(service, action) or "")
        if bucket is None or bucket.take():
            return True
        with self._lock:
            self.throttled[action or "?"] += 1
        return False

    def take(self) -> dict[str, int]:
        with self._lock:
            out = dict(sorted(self.throttled.items()))
            self.throttled.clear()
        return out


_NAMESPACES = {
    "elasticloadbalancing": "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
    "elasticache": "http://elasticache.amazonaws.com/doc/2015-02-02/",
}


def throttling_response(service: str | None, code: str = "ThrottlingException") -> bytes:
    """The HTTP response a query-protocol service sends a throttled request: 400 and an
    ``ErrorResponse`` document with ``Type`` Sender, the code, and "Rate exceeded" (the
    message the ELB guide names)."""
    request_id = str(uuid.uuid4())
    namespace = _NAMESPACES.get(service or "", "")
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    body = (
        f"<ErrorResponse{xmlns}><Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>Rate exceeded</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\n"
        f"x-amzn-RequestId: {request_id}\r\n"
        "Content-Type: text/xml\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode()
    return head + body


class LatencyProxy:
    """TCP proxy on 127.0.0.1 to ``upstream`` (host, port); ``calls`` counts requests by
    operation (throttled ones included); ``throttle``, when given, answers the requests
    its buckets refuse (see the module docstring) and counts them in ``throttle.throttled``.

    Requests are read whole (headers, then ``Content-Length`` bytes of body): botocore sends
    one request at a time on a connection and waits for its response, so a refused request
    is answered here and the next one is read after it. Each client connection gets one
    upstream connection for as long as both stay open: the connections botocore keeps alive
    stay alive through the proxy (as far as the server keeps them), and every request on
    them still waits ``delay_s``."""

    def __init__(self, upstream: tuple[str, int], delay_s: float, throttle: Throttle | None = None) -> None:
        self.upstream = upstream
        self.delay_s = delay_s
        self.throttle = throttle
        self.calls: Counter[str] = Counter()
        self.connections = 0  # accepted from clients: with keep-alive, far fewer than calls
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0), backlog=256)
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

    def take_connections(self) -> int:
        with self._lock:
            out, self.connections = self.connections, 0
        return out

    def take_throttled(self) -> dict[str, int]:
        return self.throttle.take() if self.throttle is not None else {}

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            send_lock = threading.Lock()
            threading.Thread(target=self._requests, args=(client, upstream, send_lock), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, send_lock), daemon=True).start()

    def _requests(self, src: socket.socket, dst: socket.socket, send_lock: threading.Lock) -> None:
        buffer = b""
        try:
            while True:
                request, buffer = _read_request(src, buffer)
                if request is None:
                    return
                time.sleep(self.delay_s)  # the round trip a real API adds
                match = _ACTION.search(request)
                action = match.group(1).decode() if match else None
                with self._lock:
                    self.calls[action or "?"] += 1
                if self.throttle is not None:
                    service_match = _SERVICE.search(request)
                    service = service_match.group(1).decode() if service_match else None
                    if not self.throttle.admit(service, action):
                        with send_lock:
                            src.sendall(throttling_response(service, self.throttle.code))
                        continue
                dst.sendall(request)
        except OSError:
            pass
        finally:
            _close(src, dst)

    def _responses(self, src: socket.socket, dst: socket.socket, send_lock: threading.Lock) -> None:
        try:
            while data := src.recv(65536):
                with send_lock:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src, dst)


def _read_request(sock: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes]:
    """One whole HTTP/1.1 request from ``buffer`` and ``sock``: (request, what follows it);
    (None, b"") when the connection closed."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return None, b""
        buffer += data
    end = buffer.index(b"\r\n\r\n") + 4
    length_match = _CONTENT_LENGTH.search(buffer[:end])
    total = end + (int(length_match.group(1)) if length_match else 0)
    while len(buffer) < total:
        data = sock.recv(65536)
        if not data:
            return None, b""
        buffer += data
    return buffer[:total], buffer[total:]


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
