"""Hostile attacks on ``read_order`` (pure: the rotation of the groups a new instance never
read, the reserve kept for a change, with clocks and pass sizes that are odd) and on the
bytecode zip's ``--python`` (fake interpreters: shell scripts that answer the probe)."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cachebridge.deploy import package
from cachebridge.errors import ConfigError
from cachebridge.read_order import ReadBudget, rotation_offset


@pytest.mark.parametrize(("n", "per_pass", "reads"), [(1080, 540, 500), (1200, 400, 390), (100, 50, 49), (90, 30, 29)])
def test_new_instances_every_minute_reach_every_group_though_each_reads_fewer_than_its_estimate(n: int, per_pass: int, reads: int) -> None:
    """A new instance each minute (nothing remembered) reads ``reads`` never-read groups from
    where the minute says; the estimate ``per_pass`` is a little high (the prefetch took
    tokens). With a step that divides the group count, the starting points cycled over a
    few values and the groups just past each window were never read by any instance."""
    covered: set[int] = set()
    for minute in range(4 * n):
        start = rotation_offset(n, minute * 60.0, per_pass)
        covered |= {(start + i) % n for i in range(reads)}
        if len(covered) == n:
            break
    assert covered == set(range(n)), f"never read: {sorted(set(range(n)) - covered)[:10]}..."


@pytest.mark.parametrize("n", [1000, 1080])
def test_the_step_stays_close_to_what_a_pass_reads(n: int) -> None:
    """Two successive minutes still cover what two passes can read (no large overlap)."""
    per_pass = 540
    first, second = rotation_offset(n, 0.0, per_pass), rotation_offset(n, 60.0, per_pass)
    step = (second - first) % n
    assert per_pass - 10 <= step <= per_pass


@pytest.mark.parametrize("wall", [math.inf, -math.inf, math.nan, 1e308, -1e308])
def test_a_broken_wall_clock_gives_a_start_inside_the_list(wall: float) -> None:
    for per_pass in (None, 3, 7):
        assert 0 <= rotation_offset(10, wall, per_pass) < 10


def test_a_clock_going_backwards_keeps_back_no_negative_time() -> None:
    budget = ReadBudget(
        deadline=50.0, call_budget_s=1.0, poll_interval_s=0.5, first_read_at=10.0,
        source_round_s=-5.0, rate_per_s=None, concurrency=2, source_read_s=-1.0,
    )
    assert budget.found_change(9.0, details_known=True, locked=True)
    assert 0.0 <= budget.reserve_s() <= 2 * 1.0 + 1.0
    assert budget.may_read(9.5)


def test_the_confirming_read_is_the_changed_sources_not_the_whole_round() -> None:
    """A first round of 30 s (many sources) but no read over 0.5 s: one change keeps back
    about one read, its calls and its writes, not 30 s."""
    budget = ReadBudget(
        deadline=60.0, call_budget_s=2.0, poll_interval_s=0.5, first_read_at=0.0,
        source_round_s=30.0, rate_per_s=None, concurrency=4, source_read_s=0.5,
    )
    assert budget.found_change(31.0, details_known=True, locked=False)
    assert budget.reserve_s() < 10.0
    # Many changes: the round of re-reads grows with them, up to the whole first round.
    assert budget._confirm_s(8) == 1.0
    assert budget._confirm_s(1000) == 30.0


def test_an_event_pass_keeps_back_the_whole_round() -> None:
    budget = ReadBudget(
        deadline=60.0, call_budget_s=2.0, poll_interval_s=0.5, first_read_at=0.0,
        source_round_s=30.0, rate_per_s=None, concurrency=4, source_read_s=None,
    )
    assert not budget.found_change(31.0, details_known=True, locked=False)
    assert budget.deferred == 1


# -- bytecode packaging: a hostile or odd ``--python`` -----------------------------------------

THIS_VERSION = (sys.version_info[0], sys.version_info[1])
PROBE = {
    "version": list(THIS_VERSION), "implementation": "cpython",
    "cache_tag": sys.implementation.cache_tag, "magic": importlib.util.MAGIC_NUMBER.hex(),
}


def fake_python(where: Path, *, probe: dict[str, object] | None = None, compile_stdout: str | None = None, banner: str | None = None) -> Path:
    """A shell script standing in for an interpreter: it answers the probe (``-I``) with
    ``probe`` when given, and the compile step with ``compile_stdout`` when given; anything
    else goes to the real interpreter, after ``banner`` on stdout (a noisy shim)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    lines = ["#!/bin/sh"]
    if probe is not None:
        lines.append(f"if [ \"$1\" = -I ]; then echo '{json.dumps(probe)}'; exit 0; fi")
    if compile_stdout is not None:
        lines.append(f"if [ \"$1\" = -s ]; then cat >/dev/null; printf '%s' '{compile_stdout}'; exit 0; fi")
    if banner is not None:
        lines.append(f"echo '{banner}'")
    lines.append(f'exec "{sys.executable}" "$@"')
    where.write_text("\n".join(lines) + "\n")
    where.chmod(0o755)
    return where


def small_package(tmp_path: Path) -> tuple[Path, Path]:
    """A cachebridge with a handler and a dnspython with a resolver, each a few lines."""
    pkg, dns = tmp_path / "pkg" / "cachebridge", tmp_path / "dnspkg" / "dns"
    pkg.mkdir(parents=True)
    dns.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""cachebridge."""\n')
    (pkg / "handler.py").write_text('"""The handler."""\n\ndef handler(event, context):\n    """Doc."""\n    return 1\n')
    (dns / "__init__.py").write_text("")
    (dns / "resolver.py").write_text("X = 1\n")
    return pkg, dns


def build_with(python: Path, tmp_path: Path) -> package.LambdaPackage:
    runtime = package.find_runtime_python(str(python), THIS_VERSION)
    pkg, dns = small_package(tmp_path)
    return package.build(pkg, dns, bytecode=package.BytecodeOptions(runtime, "all"))


def test_a_python_whose_path_has_spaces_builds_the_same_zip(tmp_path: Path) -> None:
    spaced = fake_python(tmp_path / "dir with spaces" / "python 3")
    plain = fake_python(tmp_path / "plain" / "python3")
    assert build_with(spaced, tmp_path / "a").data == build_with(plain, tmp_path / "b").data


def test_a_directory_as_python_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        package.find_runtime_python(str(tmp_path), THIS_VERSION)


def test_a_shim_that_prints_a_banner_on_stdout_still_builds_or_is_refused_in_one_line(tmp_path: Path) -> None:
    noisy = fake_python(tmp_path / "bin" / "python", banner="pyenv: using the system python")
    try:
        built = build_with(noisy, tmp_path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    with zipfile.ZipFile(io.BytesIO(built.data)) as archive:
        pyc = archive.read(f"cachebridge/__pycache__/handler.{sys.implementation.cache_tag}.pyc")
    assert pyc[:4] == importlib.util.MAGIC_NUMBER


@pytest.mark.parametrize("stdout", ["", "{}", "not json", '{"cachebridge/handler.py": "!!!"}'])
def test_a_fake_interpreter_that_answers_the_probe_but_does_not_compile_is_refused(tmp_path: Path, stdout: str) -> None:
    fake = fake_python(tmp_path / "bin" / "python", probe=PROBE, compile_stdout=stdout)
    with pytest.raises(ConfigError, match="--python"):
        build_with(fake, tmp_path)


def test_a_probe_that_names_a_hostile_cache_tag_is_refused(tmp_path: Path) -> None:
    """The cache tag names the pyc entries: "../../x" would put files outside the package."""
    fake = fake_python(tmp_path / "bin" / "python", probe={**PROBE, "cache_tag": "../../evil"})
    with pytest.raises(ConfigError, match="--python"):
        package.find_runtime_python(str(fake), THIS_VERSION)


def test_pycs_whose_magic_is_not_the_probed_versions_are_refused(tmp_path: Path) -> None:
    """The probe says one version's magic, the compiler writes another's (a wrapper that
    answers the probe itself): the runtime could not load them without sources."""
    fake = fake_python(tmp_path / "bin" / "python", probe={**PROBE, "magic": "00000d0a"})
    with pytest.raises(ConfigError, match="--python"):
        build_with(fake, tmp_path)


def test_the_handler_and_dnspython_run_with_their_docstrings_stripped(tmp_path: Path) -> None:
    """Sourceless pycs (no fallback): dnspython's exceptions read their class docstrings as
    their message, and resolving a name must still work."""
    runtime = package.find_runtime_python(sys.executable, THIS_VERSION)
    built = package.build(bytecode=package.BytecodeOptions(runtime, "imported", keep_sources=False))
    root = tmp_path / "task"
    with zipfile.ZipFile(io.BytesIO(built.data)) as archive:
        archive.extractall(root)
    code = (
        "import dns.exception, dns.resolver, dns.name, cachebridge.handler\n"
        "assert dns.resolver.NXDOMAIN.__module__ == 'dns.resolver'\n"
        "assert str(dns.exception.Timeout()).startswith('The DNS operation timed out'), str(dns.exception.Timeout())\n"
        "assert str(dns.resolver.NoNameservers()) , 'empty message'\n"
        "print(dns.name.from_text('a.example.').to_text())\n"
    )
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(root)!r}); exec({code!r})"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "a.example."


def test_an_interpreter_that_hangs_or_vanishes_after_the_probe_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hanging = tmp_path / "bin" / "python"
    fake_python(hanging, probe=PROBE)
    hanging.write_text(hanging.read_text().replace(f'exec "{sys.executable}" "$@"', "exec sleep 30"))
    monkeypatch.setattr(package, "COMPILE_TIMEOUT_S", 1.0)
    with pytest.raises(ConfigError, match="did not compile the package"):
        build_with(hanging, tmp_path / "a")

    gone = fake_python(tmp_path / "gone" / "python", probe=PROBE)
    runtime = package.find_runtime_python(str(gone), THIS_VERSION)
    gone.unlink()
    pkg, dns = small_package(tmp_path / "b")
    with pytest.raises(ConfigError, match="does not run"):
        package.build(pkg, dns, bytecode=package.BytecodeOptions(runtime, "all"))


def test_the_bytecode_zip_is_the_same_from_builders_with_other_hash_seeds(tmp_path: Path) -> None:
    code = (
        "import sys; from cachebridge.deploy import package as p; "
        "r = p.find_runtime_python(sys.executable, tuple(sys.version_info[:2])); "
        "print(p.build(bytecode=p.BytecodeOptions(r, 'all')).sha256)"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, check=True).stdout.strip()
        for seed in ("1", "4242")
    }
    assert len(digests) == 1
