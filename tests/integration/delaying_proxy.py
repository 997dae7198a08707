"""A TCP proxy on loopback that delays every response: a slow AWS endpoint in front of a
moto server. It also counts the write actions that pass through it (elbv2 speaks the query
protocol: ``Action=RegisterTargets`` in the request body), so a test can compare the writes
AWS saw with the writes a report claims."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from typing import Any

__all__ = ["DelayingProxy"]

_ACTIONS = (b"Action=RegisterTargets", b"Action=DeregisterTargets")


class DelayingProxy:
    def __init__(self, upstream: tuple[str, int], delay_s: float) -> None:
        self.upstream = upstream
        self.delay_s = delay_s
        self.actions: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> DelayingProxy:
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in [self._listener, *sockets]:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> DelayingProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            pending = threading.Event()  # a request went up; its response is delayed once
            self._spawn(self._pump, client, server, pending, True)
            self._spawn(self._pump, server, client, pending, False)

    def _pump(self, source: socket.socket, sink: socket.socket, pending: threading.Event, upstream: bool) -> None:
        source.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if upstream:
                for action in _ACTIONS:
                    if action in data:
                        with self._lock:
                            self.actions[action.decode().split("=")[1]] += 1
                pending.set()
            elif pending.is_set():
                pending.clear()
                if self._stop.wait(self.delay_s):
                    break
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
