"""Real ``redis-server`` processes as cache nodes on loopback addresses (127.0.0.x).

Each node runs in the foreground under this process (never ``--daemonize``), with
persistence off and its files in a directory of its own, and is stopped by PID.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

if TYPE_CHECKING:
    import redis

__all__ = ["RedisNode", "redis_server_binary", "free_port", "RedisNotInstalled"]


class RedisNotInstalled(RuntimeError):
    pass


def redis_server_binary() -> str:
    path = shutil.which("redis-server") or shutil.which("valkey-server")
    if path is None:
        raise RedisNotInstalled("redis-server (or valkey-server) is not on PATH; on Debian: apt-get install redis-server")
    return path


def free_port(hosts: tuple[str, ...] = ("127.0.0.1",), attempts: int = 50) -> int:
    """A TCP port free on every one of ``hosts`` (nodes share one port, like ElastiCache)."""
    for _ in range(attempts):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
        if all(_bindable(h, port) for h in hosts):
            return port
    raise RuntimeError(f"no port free on all of {hosts} after {attempts} attempts")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class RedisNode:
    host: str
    port: int
    workdir: Path
    binary: str = field(default_factory=redis_server_binary)
    process: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()  # e.g. cluster mode (sandbox.redis_cluster)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, replica_of: "RedisNode | None" = None, timeout: float = 10.0) -> "RedisNode":
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--protected-mode", "no",
            # Replicas announce (and connect from) their own loopback address, so the
            # primary knows them as 127.0.0.x rather than 127.0.0.1 (FAILOVER TO needs it).
            "--replica-announce-ip", self.host,
            "--bind-source-addr", self.host,
            "--logfile", str(self.workdir / "redis.log"),
        ]
        args += list(self.extra_args)
        if replica_of is not None:
            args += ["--replicaof", replica_of.host, str(replica_of.port)]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server on {self.address} exited with {self.process.returncode}; see {self.workdir / 'redis.log'}")
            try:
                if self.command("PING"):
                    return self
            except (OSError, RedisError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server on {self.address} did not answer PING within {timeout}s")

    def client(self, timeout: float = 2.0) -> "redis.Redis":
        import redis

        return redis.Redis(self.host, self.port, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True)

    def command(self, *args: str, timeout: float = 2.0) -> Any:
        with self.client(timeout) as conn:
            return conn.execute_command(*args)

    def role(self) -> str:
        """'master' or 'slave', from ROLE."""
        return str(self.command("ROLE")[0])

    def promote(self) -> None:
        self.command("REPLICAOF", "NO", "ONE")

    def follow(self, primary: "RedisNode") -> None:
        self.command("REPLICAOF", primary.host, str(primary.port))

    def wait_role(self, role: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.role() == role:
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.address} is not {role} after {timeout}s")

    def wait_synced(self, timeout: float = 10.0) -> None:
        """Wait until this replica's link to its primary is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.command("INFO", "replication").get("master_link_status") == "up":
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.address} did not finish syncing within {timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.process = None

    def kill(self) -> None:
        """Stop without a clean shutdown, like a failed host."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None
