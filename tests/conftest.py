"""Fixtures every test gets, and what tests of several directories share: a moto server
in a process of its own, a benchmark script loaded as a module, a clock the test moves
by hand, and the function's zip unpacked and run as Lambda runs it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import pytest

from cachebridge import pacing


@pytest.fixture(autouse=True)
def _full_elb_describe_bucket() -> Iterator[None]:
    """The controller paces its ELB Describe* calls with one bucket per process (``pacing``),
    at the documented 40 / 10 a second unless a config says otherwise. moto does not
    throttle, and a test session is one long-lived process: each test starts with a full
    bucket, so a test is paced only past 40 Describe* calls of its own."""
    pacing.reset()
    yield


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as the module ``bench_<name>`` (the scripts are not a package).
    Each call runs the script afresh; ``sys.modules`` keeps the first, which is what a
    dataclass defined in the script looks its module up by."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(f"bench_{name}", module)
    spec.loader.exec_module(module)
    return module


class ManualClock:
    """A clock that moves only when the test moves it (``clock.now += 1``): left alone, a
    token bucket reading it never refills, and what it holds is all a pass gets."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def aws_server_process() -> Iterator[str]:
    """A moto server with ``moto_ext`` (``cachebridge.sandbox.aws_server``) in a process of
    its own on loopback: its endpoint URL while the block runs, stopped after."""
    from cachebridge.sandbox.redis_nodes import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachebridge.sandbox.aws_server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "ready ..." once listening; "" if it died
        if not line.startswith("ready"):
            raise RuntimeError(f"moto server did not start (exit {proc.poll()})")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# What the Lambda runtime provides besides the standard library: boto3 and its dependencies.
LAMBDA_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


class LambdaTask(NamedTuple):
    """The unpacked zip (``/var/task``) and a directory holding only what the runtime
    provides (links to this environment's boto3 and its dependencies)."""

    code: Path
    runtime: Path


def unpack_lambda_zip(archive: Path, root: Path) -> LambdaTask:
    code, runtime = root / "task", root / "runtime"
    code.mkdir(parents=True)
    runtime.mkdir()
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(code)
    for name in LAMBDA_PROVIDED:
        origin = Path(__import__(name).__file__)  # type: ignore[arg-type]
        src = origin.parent if origin.name == "__init__.py" else origin
        (runtime / src.name).symlink_to(src, target_is_directory=src.is_dir())
    return LambdaTask(code, runtime)


def run_in_lambda_task(
    task: LambdaTask, script: str, *args: str, env: dict[str, str] | None = None,
    write_bytecode: bool = False, timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    """``script`` in a fresh interpreter that sees the standard library, ``sys.argv[1]``
    (the task) and ``sys.argv[2]`` (the runtime's boto3) and nothing of this environment
    (``-I -S``); without ``write_bytecode``, no bytecode is written, as in Lambda's
    read-only ``/var/task``. Only PATH and HOME come from here, beside ``env``."""
    flags = ["-I", "-S"] if write_bytecode else ["-I", "-S", "-B"]
    return subprocess.run(
        [sys.executable, *flags, "-c", script, str(task.code), str(task.runtime), *args],
        capture_output=True, text=True, timeout=timeout, cwd=task.code,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(task.code.parent), **(env or {})},
    )
