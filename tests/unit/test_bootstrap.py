"""scripts/bootstrap.sh: ``--demo`` installs what the demo needs and no test tools; the
default (``make test``) installs everything. A stand-in Python records what the script
asks of it, in a copy of the tree, so nothing is installed for real."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

# Logs every call, makes ``-m venv DIR`` a directory whose bin/python is this same stand-in.
STUB = """#!/usr/bin/env bash
echo "$0 $*" >> "$BOOTSTRAP_LOG"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && cp "$BOOTSTRAP_STUB" "$3/bin/python" && chmod +x "$3/bin/python"
fi
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed here (scripts/bootstrap.sh installs it)")
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", tmp_path / "scripts" / "bootstrap.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    stub = tmp_path / "stub-python"
    stub.write_text(STUB)
    stub.chmod(0o755)
    return tmp_path


def _bootstrap(tree: Path, *args: str) -> list[str]:
    log = tree / "calls.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PYTHON": str(tree / "stub-python"), "BOOTSTRAP_LOG": str(log), "BOOTSTRAP_STUB": str(tree / "stub-python")}
    done = subprocess.run(["bash", "scripts/bootstrap.sh", *args], cwd=tree, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines() if log.exists() else []


def test_demo_installs_cli_and_sandbox_only(tree: Path) -> None:
    calls = _bootstrap(tree, "--demo")
    installs = [c for c in calls if " pip install " in c]
    assert len(installs) == 1 and installs[0].endswith("-e .[cli,sandbox]")
    assert not any("checkov" in c for c in calls)
    assert _bootstrap(tree, "--demo") == []  # installed already: nothing again


def test_default_installs_everything_and_serves_the_demo(tree: Path) -> None:
    calls = _bootstrap(tree)
    assert any(c.endswith("-e .[dev]") for c in calls)
    assert any("checkov==" in c for c in calls)
    assert _bootstrap(tree, "--demo") == []  # a dev install holds the demo's extras


def test_unknown_option_is_refused(tree: Path) -> None:
    done = subprocess.run(["bash", "scripts/bootstrap.sh", "--everything"], cwd=tree, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "usage" in done.stderr
