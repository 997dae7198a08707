"""moto server with cachebridge's extensions, in a thread or as its own process.

``python -m cachebridge.sandbox.aws_server --host 127.0.0.1 --port 5000`` serves the AWS
APIs on loopback until it gets SIGTERM/SIGINT. The extensions (``moto_ext``) are
installed before the first request, so clients see (IP, port) target identity, the NLB
type in CloudFormation and the ElastiCache calls the sandbox needs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

__all__ = ["AwsServer", "main"]

ACCOUNT_ID = "123456789012"  # moto's default account


class AwsServer:
    """moto server in a background thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                pass

        from . import moto_ext

        moto_ext.install()
        self._server: Any = make_server(
            host, port, DomainDispatcherApplication(create_backend_app), threaded=True, request_handler=QuietHandler
        )
        self.host = host
        self.port: int = self._server.server_port
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "AwsServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="cachebridge-aws", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
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
        threading.Thread(target=server._server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ready {server.endpoint_url}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
