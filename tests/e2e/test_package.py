"""cachebridge installs like a tool: scripts/check-package.sh builds the sdist and the
wheel, runs twine check, installs the wheel with pipx (cli and sandbox extras) and runs the
installed command. It reaches PyPI for the extras' dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_wheel_builds_checks_and_installs_with_pipx() -> None:
    done = subprocess.run(
        ["bash", "scripts/check-package.sh"], cwd=ROOT, capture_output=True, text=True, timeout=1200,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "PASSED" in done.stdout
    assert "check-package: the wheel holds all" in done.stdout
    assert "check-package: ok (cachebridge-" in done.stdout
