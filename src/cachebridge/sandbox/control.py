"""The client side of the sandbox: start the supervisor, find it, talk to it, stop it.

The state directory is the owner's alone (0700, files 0600): it holds the control API's
token, which every request sends, and the supervisor's identity (PID, start time, command
line), which ``down`` checks before it signals anything: a stale PID that now belongs to
another process is left alone."""

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
from urllib.parse import urlsplit

from .supervisor import STATE_FILE, TOKEN_FILE, SandboxOptions, write_private

__all__ = ["DEFAULT_STATE_DIR", "SandboxError", "up", "down", "read_state", "control", "events", "is_supervisor", "running_supervisor", "identity_of", "started_after_boot"]

IDENTITY_FILE = "supervisor.json"
PID_FILE = "supervisor.pid"
SUPERVISOR_MODULE = "cachebridge.sandbox.supervisor"

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


def _running(pid: int) -> bool:
    """Alive and not a zombie: a supervisor that exited after its parent did is left for
    init to reap, and init in a container may never do so."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _identity(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / IDENTITY_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def is_supervisor(pid: int, state_dir: Path) -> tuple[bool, str]:
    """Whether ``pid`` is the supervisor started for ``state_dir``: alive, started at the
    recorded time, running the supervisor module on this state directory. Returns the
    verdict and what the process is, for the message."""
    verdict, what = _check(pid, state_dir)
    return verdict == "ours", what


def running_supervisor(state_dir: Path) -> int | None:
    """The PID recorded in ``state_dir`` when a running process holds it that runs the
    supervisor on this state directory, whether or not it matches the recorded identity:
    what ``up`` must not start a second sandbox beside. None for an exited (zombie)
    supervisor, a stranger holding the PID, or nothing recorded."""
    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _check(pid, state_dir)[0] in ("ours", "lookalike") else None


def _check(pid: int, state_dir: Path) -> tuple[str, str]:
    """What ``pid`` is to the sandbox in ``state_dir``, and what it is, for the message:
    "ours" (running, matching the recorded identity), "exited" (the recorded supervisor,
    exited but unreaped: its PID and session are still its own), "lookalike" (runs the
    supervisor on this state directory, but its start does not match the identity, or the
    identity cannot be read), "stranger" (another process holds the PID) or "gone"."""
    import psutil

    if pid <= 0:  # never a process: os.kill(0 or -1) would signal a whole group or everything
        return "stranger", f"pid {pid}, which names no one process"
    try:
        process = psutil.Process(pid)
        started = started_after_boot(process)
        name = process.name()
    except psutil.NoSuchProcess:
        return "gone", "no such process"
    except psutil.AccessDenied:
        return "stranger", "a process of another user"
    try:
        cmdline = process.cmdline()
    except psutil.ZombieProcess:
        return ("exited" if _matches_identity(state_dir, pid, process, started) else "stranger"), "a process that has exited"
    except psutil.NoSuchProcess:
        return "gone", "no such process"
    except psutil.AccessDenied:
        return "stranger", "a process of another user"
    shown = " ".join(cmdline)[:120] or name
    if SUPERVISOR_MODULE not in cmdline or str(state_dir.resolve()) not in {str(Path(a).resolve()) for a in cmdline if "/" in a}:
        return "stranger", repr(shown)
    if not _matches_identity(state_dir, pid, process, started):
        return "lookalike", f"{shown!r}, started at another time than the recorded supervisor (or its identity file is damaged)"
    return "ours", repr(shown)


def _matches_identity(state_dir: Path, pid: int, process: Any, started: float) -> bool:
    identity = _identity(state_dir)
    if identity is None:
        return False
    try:
        return int(identity.get("pid", -1)) == pid and _same_start(identity, process, started)
    except (TypeError, ValueError):  # a damaged identity matches nothing
        return False


def started_after_boot(process: Any) -> float:
    """When ``process`` started, in seconds after boot. Unlike ``create_time()`` (boot time
    plus this), it does not move when the wall clock is stepped: a VM restored from a
    snapshot, or NTP correcting a clock, moves the boot time the kernel reports by seconds,
    and the supervisor would no longer be recognised as itself."""
    import psutil

    return float(process.create_time() - psutil.boot_time())


def identity_of(pid: int) -> dict[str, Any]:
    """What ``down`` later checks a PID against before it signals it."""
    import psutil

    process = psutil.Process(pid)
    return {"pid": pid, "create_time": process.create_time(), "started_after_boot_s": started_after_boot(process)}


def _same_start(identity: dict[str, Any], process: Any, started: float) -> bool:
    # Start times are kept to the clock tick (10 ms on Linux); 0.05 s allows for rounding.
    if "started_after_boot_s" in identity:
        return abs(float(identity["started_after_boot_s"]) - started) <= 0.05
    return abs(float(identity.get("create_time", 0)) - process.create_time()) <= 0.05  # written by an older release


def _private_dir(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_dir.chmod(0o700)  # an existing directory, or one the umask widened


def up(options: SandboxOptions, timeout: float = UP_TIMEOUT_S) -> dict[str, Any]:
    """Start the supervisor in its own session and return its state once ready."""
    import psutil

    state_dir = options.state_dir
    running = running_supervisor(state_dir)
    if running is not None:
        raise SandboxError(f"a sandbox is already running (pid {running}); run 'cachebridge sandbox down' first")
    _private_dir(state_dir)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    (state_dir / "error.txt").unlink(missing_ok=True)
    raw = asdict(options)
    raw.pop("state_dir")
    log = os.fdopen(os.open(state_dir / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", SUPERVISOR_MODULE, "--state-dir", str(state_dir.resolve()), "--options", json.dumps(raw, default=str)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # outlives this command; 'sandbox down' stops it by PID
    )
    log.close()
    write_private(state_dir / PID_FILE, str(process.pid))
    try:
        identity = identity_of(process.pid)
    except psutil.NoSuchProcess:  # died at once: the loop below reports why
        identity = {"pid": process.pid, "create_time": 0.0}
    write_private(state_dir / IDENTITY_FILE, json.dumps(identity))
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
    """Stop the supervisor by PID; it stops its nodes and servers. Returns what was stopped.

    The processes of the supervisor's session (it starts one: ``up``) are the sandbox's:
    those still running once the supervisor has gone (it was killed, or it died without
    stopping its nodes) are stopped too, so "stopped" never leaves a redis-server behind."""
    pid_file = state_dir / PID_FILE
    try:
        pid = int(pid_file.read_text().strip())
        if pid <= 0:  # os.kill(0 or -1) signals a whole group, or every process
            raise ValueError(f"{pid} names no one process")
    except FileNotFoundError:  # never started here, or another 'down' got there first
        return {"stopped": False, "reason": "no sandbox is running here"}
    except (OSError, ValueError) as exc:
        return {"stopped": False, "reason": f"{pid_file} is damaged ({exc}); nothing was signalled: find the supervisor with 'ps' and stop it by its PID"}
    try:
        state = read_state(state_dir) or {}
        ports = _ports(state)
    except (SandboxError, AttributeError, KeyError, TypeError, ValueError, IndexError):
        ports = []  # only what to check afterwards; the identity file decides what is signalled
    # Taken before the check, so what is checked is what is signalled: a PID reused after
    # the check is not this handle's process.
    handle = _pidfd(pid)
    try:
        return _stop(state_dir, pid, handle, ports, timeout)
    finally:
        if handle is not None:
            os.close(handle)


def _stop(state_dir: Path, pid: int, handle: int | None, ports: list[tuple[str, int]], timeout: float) -> dict[str, Any]:
    verdict, what = _check(pid, state_dir)
    if verdict == "lookalike":
        # Its command line says it is this sandbox's supervisor; unchecked, it is not
        # signalled, and its state is not stale either: forgetting it would orphan it.
        return {"stopped": False, "pid": pid,
                "reason": f"pid {pid} runs the sandbox supervisor on {state_dir} but does not match its recorded identity (it is {what}); "
                          "left it alone and kept the state: stop it by its PID if it is this sandbox's"}
    if verdict == "stranger" and _running(pid):
        # The sandbox is gone and its PID was reused: signalling it would hit a stranger.
        for name in (PID_FILE, IDENTITY_FILE, STATE_FILE, TOKEN_FILE):
            (state_dir / name).unlink(missing_ok=True)
        return {"stopped": False, "pid": pid,
                "reason": f"pid {pid} is not this sandbox's supervisor (it is {what}); left it alone and removed the stale state"}
    # Taken while the PID is still the supervisor's (running, or its zombie): no other
    # session can have its id.
    members = _session_of(pid) if verdict in ("ours", "exited") else []
    if verdict == "exited":
        _reap(pid)  # a supervisor this process started: the zombie is its to reap
    if verdict == "ours":
        _signal(pid, handle, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _running(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _running(pid) and is_supervisor(pid, state_dir)[0]:
            _signal(pid, handle, signal.SIGKILL)
            time.sleep(0.2)
            _reap(pid)
    left = _stop_processes(members)
    if verdict == "ours" and _running(pid) and is_supervisor(pid, state_dir)[0]:
        left.insert(0, pid)
    if left:
        return {"stopped": False, "pid": pid, "left_running": left,
                "reason": f"pids {', '.join(map(str, left))} of the sandbox did not stop; the state is kept so 'sandbox down' can be run again"}
    for name in (PID_FILE, IDENTITY_FILE, STATE_FILE, TOKEN_FILE):
        (state_dir / name).unlink(missing_ok=True)
    still_open = [f"{h}:{p}" for h, p in ports if _listening(h, p)]
    return {"stopped": True, "pid": pid, "ports_checked": [f"{h}:{p}" for h, p in ports], "ports_still_open": still_open}


def _pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` (Linux 5.3 and later): signals sent through it reach that
    process or none. None where there is none to take (the PID is then signalled as is)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd here, or no such process
        return None


def _signal(pid: int, handle: int | None, sig: int) -> None:
    try:
        if handle is not None:
            signal.pidfd_send_signal(handle, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:  # gone already: nothing left to stop
        pass


def _session_of(pid: int) -> list[Any]:
    """The other processes of the session ``pid`` leads."""
    import psutil

    out = []
    for process in psutil.process_iter():
        try:
            if process.pid != pid and os.getsid(process.pid) == pid:
                out.append(process)
        except OSError:  # gone meanwhile, or not ours to ask about
            pass
    return out


def _stop_processes(processes: list[Any], term_s: float = 10.0, kill_s: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL what is still running; the PIDs still running after that.
    psutil checks each process is the one listed before signalling it (not a reused PID)."""
    import psutil

    def running() -> list[Any]:
        out = []
        for process in processes:
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    out.append(process)
            except psutil.NoSuchProcess:
                pass
        return out

    for sig, wait_s in ((signal.SIGTERM, term_s), (signal.SIGKILL, kill_s)):
        for process in running():
            try:
                process.send_signal(sig)
            except psutil.Error:
                pass
        deadline = time.monotonic() + wait_s
        while running() and time.monotonic() < deadline:
            for process in processes:
                _reap(process.pid)
            time.sleep(0.1)
    return [p.pid for p in running()]


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


def _token(state: dict[str, Any]) -> str:
    try:
        return (Path(state["state_dir"]) / TOKEN_FILE).read_text().strip()
    except (KeyError, OSError) as exc:
        raise SandboxError(f"cannot read the sandbox's control token: {exc}") from None


def _control_url(state: dict[str, Any], path: str) -> str:
    """The supervisor listens on plain HTTP on loopback; anything else in a state file
    (file:, another host) is refused rather than opened."""
    url = str(state.get("control_url", ""))
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost") or not path.startswith("/"):
        raise SandboxError(f"{url!r} is not the sandbox's control API (expected http://127.0.0.1:PORT)")
    return url + path


def control(state: dict[str, Any], path: str, method: str = "GET", timeout: float = 30.0) -> Any:
    request = urllib.request.Request(
        _control_url(state, path), method=method, data=b"" if method == "POST" else None,
        headers={"Authorization": f"Bearer {_token(state)}"},
    )
    try:
        # nosec B310: _control_url admits only http:// on loopback, never file: or custom schemes.
        with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec B310
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
