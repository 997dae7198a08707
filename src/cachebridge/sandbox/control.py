"""The client side of the sandbox: start the supervisor, find it, talk to it, stop it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .supervisor import STATE_FILE, SandboxOptions

__all__ = ["DEFAULT_STATE_DIR", "SandboxError", "up", "down", "read_state", "control", "events"]

DEFAULT_STATE_DIR = Path(".cachebridge-sandbox")
UP_TIMEOUT_S = 240.0


class SandboxError(RuntimeError):
    pass


def read_state(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise SandboxError(f"{state_dir / STATE_FILE} is damaged: {exc}") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def up(options: SandboxOptions, timeout: float = UP_TIMEOUT_S) -> dict[str, Any]:
    """Start the supervisor in its own session and return its state once ready."""
    state_dir = options.state_dir
    existing = read_state(state_dir)
    if existing and _alive(int(existing["pid"])):
        raise SandboxError(f"a sandbox is already running (pid {existing['pid']}); run 'cachebridge sandbox down' first")
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    (state_dir / "error.txt").unlink(missing_ok=True)
    raw = asdict(options)
    raw.pop("state_dir")
    log = open(state_dir / "supervisor.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "cachebridge.sandbox.supervisor", "--state-dir", str(state_dir), "--options", json.dumps(raw, default=str)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # outlives this command; 'sandbox down' stops it by PID
    )
    log.close()
    (state_dir / "supervisor.pid").write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(state_dir)
        if state and state.get("status") == "ready":
            return state
        if process.poll() is not None:
            error = (state_dir / "error.txt")
            detail = error.read_text() if error.exists() else (state_dir / "supervisor.log").read_text()[-3000:]
            raise SandboxError(f"the sandbox failed to start:\n{detail.strip()}")
        time.sleep(0.2)
    process.terminate()
    process.wait(30)
    raise SandboxError(f"the sandbox did not become ready within {timeout:.0f} s; see {state_dir / 'supervisor.log'}")


def down(state_dir: Path = DEFAULT_STATE_DIR, timeout: float = 60.0) -> dict[str, Any]:
    """Stop the supervisor by PID; it stops its nodes and servers. Returns what was stopped."""
    pid_file = state_dir / "supervisor.pid"
    if not pid_file.exists():
        return {"stopped": False, "reason": "no sandbox is running here"}
    pid = int(pid_file.read_text().strip())
    state = read_state(state_dir) or {}
    ports = _ports(state)
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            _reap(pid)
    pid_file.unlink(missing_ok=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    still_open = [f"{h}:{p}" for h, p in ports if _listening(h, p)]
    return {"stopped": True, "pid": pid, "ports_checked": [f"{h}:{p}" for h, p in ports], "ports_still_open": still_open}


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _ports(state: dict[str, Any]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for url_key in ("aws_endpoint_url", "control_url"):
        url = state.get(url_key)
        if url:
            host, port = url.split("//", 1)[1].split(":")
            out.append((host, int(port)))
    nlb = state.get("nlb") or {}
    if nlb.get("port"):
        out.append((nlb.get("host", "127.0.0.1"), int(nlb["port"])))
    for node in state.get("nodes", []):
        out.append((node["host"], int(node["port"])))
    return out


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def control(state: dict[str, Any], path: str, method: str = "GET", timeout: float = 30.0) -> Any:
    request = urllib.request.Request(state["control_url"] + path, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        try:
            message = json.loads(body).get("error", body)
        except json.JSONDecodeError:
            message = body
        raise SandboxError(f"sandbox control {path}: {message}") from None
    except OSError as exc:
        raise SandboxError(f"cannot reach the sandbox at {state['control_url']}: {exc}") from None


def events(state: dict[str, Any]) -> list[dict[str, Any]]:
    return list(control(state, "/events")["events"])
