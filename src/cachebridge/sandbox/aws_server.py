"""moto server with cachebridge's extensions, in a thread or as its own process.

``python -m cachebridge.sandbox.aws_server --host 127.0.0.1 --port 5000`` serves the AWS
APIs on loopback until it gets SIGTERM/SIGINT. The extensions (``moto_ext``) are
installed before the first request, so clients see (IP, port) target identity, the NLB
type in CloudFormation and the ElastiCache calls the sandbox needs.

Two things of moto server's own that AWS does not do are left out, because they made each
call cost the stand-in several times what moto's backends spend on it:

- Connections. ``moto_server`` serves with werkzeug's development server, which answers
  every request with ``Connection: close``: each call then opens a new TCP connection.
  AWS's endpoints keep HTTP/1.1 connections alive and botocore reuses them (a pool per
  client). Here moto's WSGI application is served by cheroot (CherryPy's threaded HTTP/1.1
  server, pinned in the ``sandbox`` extra), which keeps connections alive.
- Routing. moto's dispatcher finds the backend for a request's service by listing moto's
  package directory and ``stat``-ing each of its ~180 entries, on every request, under one
  process-wide lock. The answer depends only on the service and region the request is
  signed for, so ``_Dispatcher`` remembers it.

Every request still reaches moto's backends and is answered from their state.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

__all__ = ["AwsServer", "main", "SERVER_THREADS", "IDLE_TIMEOUT_S"]

ACCOUNT_ID = "123456789012"  # moto's default account

# Requests served at once. botocore opens at most ``aws.BOTO_CONFIG.max_pool_connections``
# (64) per client; idle kept-alive connections wait in cheroot's selector, not in a thread.
# Generous, since a sandbox hook may hold a request (moto serves requests one thread each).
SERVER_THREADS = 64
# An idle kept-alive connection is closed after this long. botocore's pool checks a
# connection before reusing it, and retries a call whose connection closed under it, but a
# close racing a request is a retry spent: well above the sandbox's pass interval.
IDLE_TIMEOUT_S = 120.0
_BACKLOG = 256  # a pass may open dozens of connections at once; cheroot's default is 5
_ROUTES_REMEMBERED = 1024  # hosts are "<service>.<region>.amazonaws.com": a few dozen at most


def _dispatcher() -> Any:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class _Dispatcher(DomainDispatcherApplication):  # type: ignore[misc]
        """moto's dispatcher, remembering which backend serves a host (see the module
        docstring). ``get_backend_for_host`` is called under the dispatcher's lock."""

        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._routes: dict[str, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            if host is None:
                return None
            try:
                return self._routes[host]
            except KeyError:
                backend = super().get_backend_for_host(host)
                if backend is not None and len(self._routes) < _ROUTES_REMEMBERED:
                    self._routes[host] = backend
                return backend

    return _Dispatcher()


class AwsServer:
    """moto server in a background thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from cheroot import wsgi

        from . import moto_ext

        moto_ext.install()
        self.app: Any = _dispatcher()
        self._server: Any = wsgi.Server(
            (host, port), self._call, numthreads=SERVER_THREADS, server_name="cachebridge-moto",
            request_queue_size=_BACKLOG, timeout=IDLE_TIMEOUT_S,
        )
        self._server.keep_alive_conn_limit = None  # cheroot closes all but 10 idle connections by default
        self._server.prepare()  # binds: the port is known from here on
        self.host = host
        self.port: int = self._server.bind_addr[1]
        self._thread: threading.Thread | None = None

    def _call(self, environ: dict[str, Any], start_response: Any) -> Any:
        # Through an attribute, so a benchmark can wrap the application (pass_profile.py).
        return self.app(environ, start_response)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "AwsServer":
        self._thread = threading.Thread(target=self.serve_forever, name="cachebridge-aws", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve()

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cachebridge.sandbox.aws_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    server = AwsServer(args.host, args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server._server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ready {server.endpoint_url}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
