"""``cachebridge sandbox up`` as a user meets it: the commands it prints work pasted into a
shell, a second ``up`` refuses before claiming to start, and a short drill runs on its
defaults, waiting for a healthy path first and saying so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.redis

CLI = str(Path(sys.executable).parent / "cachebridge")
# Shells to paste into. failglob makes bash fail on an unquoted glob that matches nothing,
# as zsh's default (nomatch) does; zsh itself too when it is installed.
SHELLS = [["bash", "-c", "shopt -s failglob\n{}"]] + ([["zsh", "-c", "{}"]] if shutil.which("zsh") else [])


def _clean_env() -> dict[str, str]:
    """No AWS settings of the test run leak in: the printed commands must carry their own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    state_dir = tmp_path_factory.mktemp("sandbox-commands")
    # The printed commands are the subject, not the NLB's timings: the fast NLB profile lets
    # the connect lines work right after up (the documented one waits for registration). The
    # printed 'cachebridge status' line watches the retarget layout's one target group.
    up = subprocess.run([CLI, "sandbox", "up", "--state-dir", str(state_dir), "--registration-delay", "2",
                         "--nlb-profile", "optimistic", "--layout", "retarget"],
                        capture_output=True, text=True, timeout=300, env=_clean_env())
    try:
        assert up.returncode == 0, up.stderr
        yield {"state_dir": state_dir, "stdout": up.stdout, "state": json.loads((state_dir / "state.json").read_text())}
    finally:
        subprocess.run([CLI, "sandbox", "down", "--state-dir", str(state_dir)], capture_output=True, timeout=120)


def _sections(stdout: str) -> dict[str, list[str]]:
    """The printed commands by section: a 'name:' line, then two-space-indented commands."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = sections.setdefault(line[:-1], [])
        elif current is not None and line.startswith("  ") and line.strip():
            current.append(line.strip())
        elif not line.strip():
            current = None
    return sections


def _argv(shell: list[str], command: str) -> list[str]:
    """How the shell splits the command: a function that prints its arguments runs in its
    place, so nothing is executed and every quote and glob is still the shell's business."""
    show = "show() { for a in \"$@\"; do printf '%s\\0' \"$a\"; done; }\nshow " + command
    done = subprocess.run([*shell[:-1], shell[-1].format(show)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{shell[0]} cannot parse {command!r}: {done.stderr}"
    return done.stdout.split("\0")[:-1]


def _run(shell: list[str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*shell[:-1], shell[-1].format(command)], capture_output=True, text=True, timeout=120,
                          env=_clean_env(), cwd="/")


def test_printed_commands_parse_as_meant(sandbox: dict) -> None:
    sections = _sections(sandbox["stdout"])
    commands = [c for lines in sections.values() for c in lines]
    assert len(commands) >= 8, sandbox["stdout"]
    state = sandbox["state"]
    for shell in SHELLS:
        for command in commands:
            argv = _argv(shell, command)
            assert "#" not in argv  # zsh does not take comments on an interactive line
            if "status" in argv and "--source" in argv:
                assert argv[argv.index("--source") + 1] == f"elasticache://{state['replication_group']}?role=primary"
                assert argv[argv.index("--nameserver") + 1] == state["dns"]
                assert f"AWS_ENDPOINT_URL={state['aws_endpoint_url']}" in argv
            if "test-failover" in argv:
                assert {"AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1", f"AWS_ENDPOINT_URL={state['aws_endpoint_url']}"} <= set(argv)
            if argv[0].endswith("cachebridge") and "status" not in argv[1:2]:
                assert argv[argv.index("--state-dir") + 1] == str(sandbox["state_dir"])


def test_printed_commands_run_from_another_directory(sandbox: dict) -> None:
    sections = _sections(sandbox["stdout"])
    redis_cli, python_line = sections["connect"]
    watch_status, watch_sync_status = sections["watch"]
    for shell in SHELLS:
        done = _run(shell, redis_cli)
        assert (done.returncode, done.stdout.strip()) == (0, "OK"), done.stderr
        done = _run(shell, python_line)
        assert (done.returncode, done.stdout.strip()) == (0, "b'world'"), done.stderr
        done = _run(shell, watch_status)
        assert done.returncode == 0 and "primary" in done.stdout, done.stderr
        done = _run(shell, watch_sync_status + " --json")
        assert done.returncode == 0, done.stderr + done.stdout
        binding = json.loads(done.stdout)["bindings"][0]
        assert binding["error"] is None and binding["desired"], binding


def test_second_up_refuses_without_starting(sandbox: dict) -> None:
    again = subprocess.run([CLI, "sandbox", "up", "--state-dir", str(sandbox["state_dir"])],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1
    assert "already running" in again.stderr
    assert "starting" not in again.stderr + again.stdout


def test_drill_on_a_short_duration_waits_for_a_healthy_path(sandbox: dict) -> None:
    done = subprocess.run([CLI, "drill", "--state-dir", str(sandbox["state_dir"]), "--duration", "5", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["kind"] == "planned" and summary["lost_acknowledged_writes"] == 0
    assert "waiting until the path the drill measures is healthy" in done.stderr
    assert "path healthy after" in done.stderr and "new connections through the NLB reach the primary" in done.stderr
    # The default failover point is inside a 5 s drill: a third of it.
    assert "failing over 1.67 s into 5 s of load" in done.stderr


def test_drill_on_a_missing_stack_says_so_before_asking(sandbox: dict) -> None:
    state = sandbox["state"]
    env = {**_clean_env(), "AWS_ENDPOINT_URL": state["aws_endpoint_url"], "AWS_DEFAULT_REGION": state["region"],
           "AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}
    done = subprocess.run([CLI, "drill", "--stack-name", "nosuchstack"], capture_output=True, text=True, timeout=60,
                          env=env, input="n\n")
    assert done.returncode == 1
    assert "stack nosuchstack does not exist" in done.stderr
    assert "Continue?" not in done.stderr + done.stdout


def test_endpoints_reads_the_deployed_stack(sandbox: dict) -> None:
    state = sandbox["state"]
    env = {**_clean_env(), "AWS_ENDPOINT_URL": state["aws_endpoint_url"], "AWS_REGION": state["region"],
           "AWS_DEFAULT_REGION": state["region"], "AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}
    done = subprocess.run([CLI, "endpoints", "--stack-name", state["stack_name"], "--json"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)["endpoints"][state["stack_name"]]
    # The sandbox's cache speaks plain TCP behind a TCP listener: no TLS, no name to verify.
    assert (found["listener_protocol"], found["tls"], found["cache_tls"], found["server_name"]) == ("TCP", False, False, None)
    assert found["port"] == state["nlb"]["port"]
    assert found["clients"]["redis-cli"]["code"] == f"redis-cli -h {found['nlb_dns_name']} -p {state['nlb']['port']} PING"
    missing = subprocess.run([CLI, "endpoints", "--stack-name", "nosuchstack"], capture_output=True, text=True, timeout=60, env=env)
    assert missing.returncode == 1 and "stack nosuchstack does not exist" in missing.stderr
