"""moto server with cachebridge's extensions, as its own process.

``python -m cachebridge.sandbox.aws_server --host 127.0.0.1 --port 5000`` serves the AWS
APIs on loopback until it gets SIGTERM/SIGINT. The extensions (``moto_ext``) are
installed before the first request, so clients see (IP, port) target identity.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

__all__ = ["main", "serve"]


def serve(host: str, port: int, ready: threading.Event | None = None) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from . import moto_ext

    moto_ext.install()
    server = make_server(host, port, DomainDispatcherApplication(create_backend_app), threaded=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ready http://{host}:{server.server_port}", flush=True)
    if ready is not None:
        ready.set()
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cachebridge.sandbox.aws_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
