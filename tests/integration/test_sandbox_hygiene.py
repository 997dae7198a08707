"""Sandbox hygiene with real processes and a real HTTP server: owner-only state, a control
API that needs the token from the state directory, and ``down`` that signals only the
sandbox's own supervisor."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from cachebridge.sandbox import control as sandbox_control
from cachebridge.sandbox.control import IDENTITY_FILE, SUPERVISOR_MODULE, SandboxError, down, identity_of, is_supervisor
from cachebridge.sandbox.supervisor import STATE_FILE, TOKEN_FILE, _control_handler, write_private

from .conftest import unreaped


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A harmless process of ours, standing for whatever now holds a stale PID."""
    proc = subprocess.Popen(["sleep", "120"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def _stale_state(state_dir: Path, pid: int, create_time: float) -> None:
    state_dir.mkdir(exist_ok=True)
    write_private(state_dir / "supervisor.pid", str(pid))
    write_private(state_dir / IDENTITY_FILE, json.dumps({"pid": pid, "create_time": create_time}))
    write_private(state_dir / STATE_FILE, json.dumps({"status": "ready", "pid": pid, "state_dir": str(state_dir)}))
    write_private(state_dir / TOKEN_FILE, "stale")


def test_down_leaves_a_stranger_holding_a_stale_pid_alone(tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    # Even with the stranger's own start time recorded, its command line gives it away.
    _stale_state(tmp_path, stranger.pid, psutil.Process(stranger.pid).create_time())
    result = down(tmp_path, timeout=5)
    time.sleep(0.2)
    assert stranger.poll() is None, "down signalled a process that is not the sandbox's"
    assert result["stopped"] is False
    assert f"pid {stranger.pid} is not this sandbox's supervisor" in result["reason"] and "'sleep" in result["reason"]  # its name; the arguments may not be readable yet
    # The stale state is gone, so the next 'sandbox up' is not blocked by it.
    assert not any((tmp_path / name).exists() for name in ("supervisor.pid", IDENTITY_FILE, STATE_FILE, TOKEN_FILE))


@contextmanager
def _lookalike(state_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A sleeping Python whose command line names the supervisor module and the state dir;
    killed on the way out if it still runs."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", SUPERVISOR_MODULE, "--state-dir", str(state_dir)])
    try:
        # Just after exec, /proc may not show the arguments yet.
        deadline = time.monotonic() + 10
        while SUPERVISOR_MODULE not in psutil.Process(proc.pid).cmdline() and time.monotonic() < deadline:
            time.sleep(0.02)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_down_refuses_a_lookalike_started_at_another_time(tmp_path: Path) -> None:
    with _lookalike(tmp_path) as proc:
        _stale_state(tmp_path, proc.pid, psutil.Process(proc.pid).create_time() - 3600)
        result = down(tmp_path, timeout=5)
        time.sleep(0.2)
        assert proc.poll() is None
        assert result["stopped"] is False and "started at another time" in result["reason"]


def test_down_stops_the_process_whose_identity_matches(tmp_path: Path) -> None:
    with _lookalike(tmp_path) as proc:
        _stale_state(tmp_path, proc.pid, psutil.Process(proc.pid).create_time())
        assert is_supervisor(proc.pid, tmp_path)[0]
        result = down(tmp_path, timeout=10)
        assert result["stopped"] is True and result["pid"] == proc.pid
        proc.wait(10)  # down reaped its child already, or this does
        assert not psutil.pid_exists(proc.pid)


def test_the_supervisor_is_still_recognised_after_the_wall_clock_is_stepped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A VM restored from a snapshot, or NTP stepping the clock, moves the boot time the
    # kernel reports; the process's start, counted from boot, stays where it was.
    with _lookalike(tmp_path) as proc:
        _stale_state(tmp_path, proc.pid, 0.0)
        write_private(tmp_path / IDENTITY_FILE, json.dumps(identity_of(proc.pid)))
        booted = psutil.boot_time()
        monkeypatch.setattr(psutil._psplatform, "boot_time", lambda: booted + 2.0)
        assert abs(psutil.Process(proc.pid).create_time() - json.loads((tmp_path / IDENTITY_FILE).read_text())["create_time"] - 2.0) < 0.05
        assert is_supervisor(proc.pid, tmp_path)[0]
        result = down(tmp_path, timeout=10)
        assert result["stopped"] is True and result["ports_still_open"] == []
        proc.wait(10)


def test_an_identity_from_an_older_release_is_still_checked_by_its_start_time(tmp_path: Path) -> None:
    with _lookalike(tmp_path) as proc:
        _stale_state(tmp_path, proc.pid, psutil.Process(proc.pid).create_time())
        assert "started_after_boot_s" not in json.loads((tmp_path / IDENTITY_FILE).read_text())
        assert is_supervisor(proc.pid, tmp_path)[0]
        _stale_state(tmp_path, proc.pid, psutil.Process(proc.pid).create_time() + 1.0)
        assert not is_supervisor(proc.pid, tmp_path)[0]


def test_down_treats_a_supervisor_that_exited_unreaped_as_stopped(tmp_path: Path) -> None:
    # The supervisor outlives 'sandbox up', so when it exits its parent is init, and init in
    # a container may never reap it. Its zombie is not a process to wait for or refuse.
    with unreaped("pass", SUPERVISOR_MODULE, "--state-dir", str(tmp_path)) as (pid, _):
        _stale_state(tmp_path, pid, psutil.Process(pid).create_time())
        started = time.monotonic()
        result = down(tmp_path, timeout=30)
        assert time.monotonic() - started < 25, "down waited out its timeout on a zombie"
        assert result["stopped"] is True and result["pid"] == pid and result["ports_still_open"] == []
        assert not any((tmp_path / name).exists() for name in ("supervisor.pid", IDENTITY_FILE, STATE_FILE, TOKEN_FILE))


def test_private_files_and_directory_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private(tmp_path / "f", "secret")
        (tmp_path / "g").write_text("x")
        (tmp_path / "g").chmod(0o644)
        write_private(tmp_path / "g", "rewritten")  # an existing file is narrowed too
        state_dir = tmp_path / "state"
        state_dir.mkdir(mode=0o755)
        sandbox_control._private_dir(state_dir)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "f") == 0o600 and _mode(tmp_path / "g") == 0o600
    assert (tmp_path / "g").read_text() == "rewritten"
    assert _mode(state_dir) == 0o700


@pytest.fixture
def control_server(tmp_path: Path) -> Iterator[dict]:
    sup = SimpleNamespace(control_token="t0ken-" + "x" * 30, events=[{"t": 1.0, "kind": "sandbox.ready"}],
                          _events_lock=threading.Lock(), state={}, cluster=None, function=None, dataplane=None, nodes=[])
    write_private(tmp_path / TOKEN_FILE, sup.control_token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _control_handler(sup))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"control_url": f"http://127.0.0.1:{server.server_port}", "state_dir": str(tmp_path)}
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Bearer ", "t0ken-" + "x" * 30], ids=["none", "wrong", "empty", "no-scheme"])
@pytest.mark.parametrize(("method", "path"), [("GET", "/events"), ("GET", "/state"), ("POST", "/kill-primary"), ("POST", "/tick")])
def test_the_control_api_answers_401_without_the_token(control_server: dict, header: str | None, method: str, path: str) -> None:
    headers = {"Authorization": header} if header is not None else {}
    request = urllib.request.Request(control_server["control_url"] + path, method=method, headers=headers,
                                     data=b"" if method == "POST" else None)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401
    assert "token" in json.loads(info.value.read())["error"]


def test_the_control_client_sends_the_token_from_the_state_directory(control_server: dict, tmp_path: Path) -> None:
    assert sandbox_control.events(control_server) == [{"t": 1.0, "kind": "sandbox.ready"}]
    (tmp_path / TOKEN_FILE).write_text("another")
    with pytest.raises(SandboxError, match="token"):
        sandbox_control.events(control_server)


def test_down_signals_through_a_handle_taken_before_its_check(tmp_path: Path) -> None:
    # What down checks is what it signals: a pidfd taken before the check reaches that
    # process or none, never one that took its PID over after it exited.
    proc = subprocess.Popen(["sleep", "120"])
    handle = sandbox_control._pidfd(proc.pid)
    try:
        assert handle is not None, "no pidfd on this kernel"
        sandbox_control._signal(proc.pid, handle, signal.SIGTERM)
        assert proc.wait(10) == -signal.SIGTERM
        sandbox_control._signal(proc.pid, handle, signal.SIGTERM)  # exited and reaped: reaches no one, raises nothing
    finally:
        if handle is not None:
            os.close(handle)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
