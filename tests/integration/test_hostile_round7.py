"""Hostile answers and hostile processes: DescribeTags answers the switch and cluster layouts
must not read as "no tags", and ``sandbox down`` against a supervisor it cannot stop
cleanly, damaged state, and a zombie recorded when ``sandbox up`` runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from cachebridge.sandbox.control import IDENTITY_FILE, SUPERVISOR_MODULE, down, identity_of
from cachebridge.sandbox.supervisor import STATE_FILE, TOKEN_FILE, write_private
from cachebridge.switch_planner import NODE_TAG

from . import test_cluster as tc
from .conftest import CallLog, unreaped

pytestmark = pytest.mark.timeout(90)

WRITES = ("ModifyListener", "RegisterTargets", "DeregisterTargets", "AddTags", "RemoveTags")

stack = tc.stack


def _edit_tags_answer(elbv2: Any, edit_item: Any) -> Any:
    """DescribeTags answers pass each description through ``edit_item(description)``;
    returns the hook, for ``_unhook``."""

    def edit(parsed: dict[str, Any], **_: Any) -> None:
        parsed["TagDescriptions"] = [edit_item(d) for d in parsed.get("TagDescriptions", [])]

    elbv2.meta.events.register("after-call.elastic-load-balancing-v2.DescribeTags", edit)
    return edit


def _unhook(elbv2: Any, edit: Any) -> None:
    elbv2.meta.events.unregister("after-call.elastic-load-balancing-v2.DescribeTags", edit)


def _one_key_twice(arn: str) -> Any:
    return lambda d: {**d, "Tags": [*d["Tags"], {"Key": NODE_TAG, "Value": "sessions-0009-001"}]} if d["ResourceArn"] == arn else d


def _tag_without_key(arn: str) -> Any:
    return lambda d: {**d, "Tags": [{"Value": t.get("Value", "")} for t in d["Tags"]]} if d["ResourceArn"] == arn else d


def _tags_not_a_list(arn: str) -> Any:
    return lambda d: {**d, "Tags": {t["Key"]: t.get("Value", "") for t in d["Tags"]}} if d["ResourceArn"] == arn else d


@pytest.mark.parametrize("malformed", ["a tag without Key", "Tags not a list", "one key twice"])
def test_cluster_a_malformed_description_of_a_slot_is_an_error_naming_it_and_writes_nothing(stack: Any, elbv2: Any, malformed: str) -> None:
    tc.run(stack, elbv2)
    before = {arn: (tc.members(elbv2, arn), tc.tags(elbv2, arn)) for arn in stack.slots}
    held = next(arn for arn in stack.slots if tc.tags(elbv2, arn).get(NODE_TAG))
    make = {"a tag without Key": _tag_without_key, "Tags not a list": _tags_not_a_list, "one key twice": _one_key_twice}[malformed]
    hook = _edit_tags_answer(elbv2, make(held))
    log = CallLog(elbv2)

    result = tc.run(stack, elbv2).bindings[0]
    _unhook(elbv2, hook)

    assert "DescribeTags" in log.names()
    assert result.status == "error" and held in (result.error or ""), result.error
    assert not [n for n in log.names() if n in WRITES], log.names()
    assert {arn: (tc.members(elbv2, arn), tc.tags(elbv2, arn)) for arn in stack.slots} == before


# -- sandbox down ------------------------------------------------------------------------------

SUPERVISOR_LIKE = (
    # Stands for the supervisor: names its module and state dir, starts a child in its own
    # session (as it starts redis-server), prints the child's PID and waits.
    "import signal, subprocess, sys, time\n"
    "if sys.argv[1] == 'deaf': signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen(['sleep', '120'])\n"
    "print(child.pid, flush=True)\n"
    "if sys.argv[1] == 'exit': sys.exit(0)\n"
    "time.sleep(120)\n"
)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stop(pid: int) -> None:
    """Stop a process this test caused to exist (by PID, once it is known to be ours)."""
    try:
        psutil.Process(pid).kill()
    except psutil.NoSuchProcess:
        pass


def _supervisor_like(state_dir: Path, mode: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR_LIKE, mode, SUPERVISOR_MODULE, "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    return proc, child


def _record(state_dir: Path, pid: int, identity: dict[str, Any] | None = None) -> None:
    state_dir.mkdir(exist_ok=True)
    write_private(state_dir / "supervisor.pid", str(pid))
    write_private(state_dir / IDENTITY_FILE, json.dumps(identity or identity_of(pid)))
    write_private(state_dir / STATE_FILE, json.dumps({"status": "ready", "pid": pid, "state_dir": str(state_dir)}))
    write_private(state_dir / TOKEN_FILE, "t")


def test_down_does_not_leave_the_children_of_a_supervisor_that_ignores_sigterm(tmp_path: Path) -> None:
    # The SIGKILL that ends a supervisor deaf to SIGTERM also ends its own clean-up: the
    # redis-server nodes it started would run on, their state gone with nothing left to stop them.
    proc, child = _supervisor_like(tmp_path, "deaf")
    try:
        _record(tmp_path, proc.pid)
        result = down(tmp_path, timeout=2)
        proc.wait(10)
        assert not (result["stopped"] is True and _alive(child)), f"down says {result} while the supervisor's child {child} runs"
        assert not _alive(child)
    finally:
        _stop(child)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_down_stops_what_a_supervisor_that_died_unreaped_left_running(tmp_path: Path) -> None:
    # A supervisor killed (OOM, SIGKILL) does not stop its nodes; its zombie still holds its
    # PID and session, so the processes of that session are the sandbox's. Its parent (init,
    # once 'sandbox up' has returned) does not reap it: here a keeper stands for that parent.
    child = 0
    try:
        with unreaped(SUPERVISOR_LIKE, "exit", SUPERVISOR_MODULE, "--state-dir", str(tmp_path)) as (pid, line):
            child = int(line)
            assert _alive(child)
            _record(tmp_path, pid)
            result = down(tmp_path, timeout=5)
            assert not (result["stopped"] is True and _alive(child)), f"down says {result} while the supervisor's child {child} runs"
            assert not _alive(child)
    finally:
        if child:
            _stop(child)


def test_down_stops_its_supervisor_when_the_state_file_is_damaged(tmp_path: Path) -> None:
    # state.json only lists the ports to check; the identity file is what down trusts.
    proc, child = _supervisor_like(tmp_path, "plain")
    try:
        _record(tmp_path, proc.pid)
        (tmp_path / STATE_FILE).write_text('{"status": "ready", "pid": ')
        result = down(tmp_path, timeout=10)
        assert result["stopped"] is True, result
        assert proc.wait(10) is not None
    finally:
        _stop(child)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("identity", ['{"pid": "x", "started_after_boot_s": 1}', '{"pid": null}', '{"pid": PID, "started_after_boot_s": null}', '{"pid": PID, "create_time": "soon"}', '[PID]', '{"pid": PID, "start'])
def test_a_damaged_identity_signals_nothing_and_keeps_the_state(tmp_path: Path, identity: str) -> None:
    # The process named by the PID file runs the supervisor on this state dir: if down cannot
    # check it, it is not a stale PID to forget either (the state and token would be lost
    # while the sandbox runs on, and the next 'up' would start a second one beside it).
    proc, child = _supervisor_like(tmp_path, "plain")
    try:
        _record(tmp_path, proc.pid)
        (tmp_path / IDENTITY_FILE).write_text(identity.replace("PID", str(proc.pid)))
        result = down(tmp_path, timeout=5)
        time.sleep(0.2)
        assert proc.poll() is None and _alive(child)
        assert result["stopped"] is False
        assert (tmp_path / "supervisor.pid").exists() and (tmp_path / TOKEN_FILE).exists()
    finally:
        _stop(child)
        proc.kill()
        proc.wait(10)


def test_sandbox_up_is_not_refused_for_a_supervisor_that_exited_unreaped(tmp_path: Path) -> None:
    # 'down' treats the zombie as stopped; 'up' must not call it a running sandbox.
    from cachebridge.sandbox.commands import _running_pid

    proc = subprocess.Popen([sys.executable, "-c", "pass", SUPERVISOR_MODULE, "--state-dir", str(tmp_path)], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
        _record(tmp_path, proc.pid)
        assert _running_pid(tmp_path) is None
    finally:
        proc.wait(10)


@pytest.mark.parametrize("recorded", ["-1", "0", "12ab", ""])
def test_a_damaged_pid_file_signals_nothing_and_says_so(tmp_path: Path, recorded: str) -> None:
    proc, child = _supervisor_like(tmp_path, "plain")
    try:
        _record(tmp_path, proc.pid)
        (tmp_path / "supervisor.pid").write_text(recorded)
        result = down(tmp_path, timeout=5)
        time.sleep(0.2)
        assert proc.poll() is None and _alive(child)
        assert result["stopped"] is False and "supervisor.pid is damaged" in result["reason"]
        assert (tmp_path / TOKEN_FILE).exists()
    finally:
        _stop(child)
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("answer", ["empty", "another group only"])
def test_a_group_read_with_its_details_is_not_taken_for_untagged_when_the_answer_leaves_it_out(stack: Any, elbv2: Any, answer: str) -> None:
    # What a dry run and the cached details report: the owner and lock table are unknown.
    from cachebridge.nlb import OWNER_TAG, TargetGroups

    elbv2.add_tags(ResourceArns=[stack.config_tg], Tags=[{"Key": OWNER_TAG, "Value": "payments"}])
    other = stack.slots[0]

    def edit(parsed: dict[str, Any], **_: Any) -> None:
        parsed["TagDescriptions"] = [] if answer == "empty" else [{"ResourceArn": other, "Tags": []}]

    elbv2.meta.events.register("after-call.elastic-load-balancing-v2.DescribeTags", edit)
    try:
        info = TargetGroups(elbv2, cache=False).info("sessions-config")
    finally:
        _unhook(elbv2, edit)
    assert info.tags_error is not None and "left out" in info.tags_error, info
    assert info.owner is None  # unknown, and said so: not an owner read from another group


def test_an_older_identity_after_a_clock_step_is_refused_but_not_forgotten(tmp_path: Path) -> None:
    # An identity written by an older release holds only the wall-clock start; after a clock
    # step it no longer matches. Not signalled (it cannot be checked), and not forgotten:
    # its state and token stay, so 'status' still reaches it and 'up' does not start a second.
    proc, child = _supervisor_like(tmp_path, "plain")
    try:
        _record(tmp_path, proc.pid, {"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time() + 2.0})
        result = down(tmp_path, timeout=5)
        time.sleep(0.2)
        assert proc.poll() is None and _alive(child)
        assert result["stopped"] is False and "does not match its recorded identity" in result["reason"]
        assert all((tmp_path / name).exists() for name in ("supervisor.pid", IDENTITY_FILE, STATE_FILE, TOKEN_FILE))
        from cachebridge.sandbox.control import running_supervisor

        assert running_supervisor(tmp_path) == proc.pid
    finally:
        _stop(child)
        proc.kill()
        proc.wait(10)
