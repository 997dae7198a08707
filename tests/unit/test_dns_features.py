"""dnspython sees the same optional features whether ``cachebridge.dns_features`` settled
them or dnspython looked their packages up itself: in this virtualenv, and with nothing but
the Lambda zip's dnspython on the path (where every optional package is missing)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cachebridge.deploy import package

SRC = Path(__file__).resolve().parents[2] / "src" / "cachebridge" / "dns_features.py"

FEATURES = r"""
import importlib.util, json, sys
sys.path[:0] = sys.argv[2:]
settled = {}
if sys.argv[1] == "settled":
    spec = importlib.util.spec_from_file_location("dns_features", %r)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settled = module.settled
import dns._features as f
import dns.resolver  # what the function imports; it asks for its features on the way
print(json.dumps({"features": {name: f.have(name) for name in sorted(f._requirements)}, "settled": settled}))
""" % str(SRC)


def features(mode: str, *path: str, isolated: bool = False) -> dict[str, dict[str, bool]]:
    flags = ["-I", "-S"] if isolated else []
    done = subprocess.run([sys.executable, *flags, "-c", FEATURES, mode, *path], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_same_features_in_this_environment() -> None:
    own, settled = features("dnspython"), features("settled")
    assert settled["features"] == own["features"]
    assert all(own["features"][name] is False for name in settled["settled"])


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zip")
    package.build().write(root / "lambda.zip")
    with zipfile.ZipFile(root / "lambda.zip") as archive:
        archive.extractall(root / "task")
    return root / "task"


def test_the_same_features_with_the_zips_dnspython_alone(task: Path) -> None:
    own = features("dnspython", str(task), isolated=True)
    settled = features("settled", str(task), isolated=True)
    assert settled["features"] == own["features"]
    # Nothing optional is there, so nothing was looked up in the installed distributions.
    assert set(settled["settled"]) == set(own["features"]) and not any(own["features"].values())
