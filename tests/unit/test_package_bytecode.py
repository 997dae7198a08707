"""Bytecode in the Lambda zip: compiled by an interpreter of the runtime's version (here the
one running the tests, given as the runtime's version), deterministic, unchecked hash-based
pycs; a missing or wrong interpreter is refused with one line and exit 2."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from cachebridge.cli import cli
from cachebridge.deploy import package
from cachebridge.errors import ConfigError

THIS_VERSION = (sys.version_info[0], sys.version_info[1])
OTHER_VERSION = (sys.version_info[0], sys.version_info[1] + 1)


@pytest.fixture(scope="module")
def runtime() -> package.RuntimePython:
    return package.find_runtime_python(sys.executable, THIS_VERSION)


def _entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_runtime_version_is_the_templates() -> None:
    from cachebridge.deploy.template.controller import RUNTIME

    assert RUNTIME == f"python{package.RUNTIME_VERSION[0]}.{package.RUNTIME_VERSION[1]}"


def test_a_bytecode_zip_is_the_same_bytes_twice_and_holds_unchecked_hash_pycs(runtime: package.RuntimePython) -> None:
    options = package.BytecodeOptions(runtime)
    first, second = package.build(bytecode=options), package.build(bytecode=options)
    assert first.data == second.data and first.key == second.key
    assert first.key != package.build().key  # the bytecode is part of the content
    entries = _entries(first.data)
    tag = sys.implementation.cache_tag
    pycs = {name: data for name, data in entries.items() if name.endswith(".pyc")}
    assert f"cachebridge/__pycache__/handler.{tag}.pyc" in pycs
    assert f"dns/__pycache__/resolver.{tag}.pyc" in pycs
    assert "cachebridge/handler.py" in entries  # sources stay beside their bytecode
    for name, data in pycs.items():
        assert data[:4] == importlib.util.MAGIC_NUMBER, name
        assert int.from_bytes(data[4:8], "little") == 0b01, name  # PEP 552: hash-based, source not checked
        source = entries[name.replace(f"__pycache__/", "").replace(f".{tag}.pyc", ".py")]
        assert data[8:16] == importlib.util.source_hash(source), name


def test_imported_modules_follow_the_handlers_imports_and_the_answer_record_types(runtime: package.RuntimePython) -> None:
    built = package.build(bytecode=package.BytecodeOptions(runtime, "imported"))
    tag = sys.implementation.cache_tag
    pycs = {name for name in built.entries if name.endswith(".pyc")}
    for module in ("cachebridge/handler", "cachebridge/sync", "cachebridge/lease", "cachebridge/writes",
                   "dns/resolver", "dns/rdtypes/IN/A", "dns/rdtypes/IN/AAAA", "dns/rdtypes/ANY/CNAME"):
        folder, _, file = module.rpartition("/")
        assert f"{folder}/__pycache__/{file}.{tag}.pyc" in pycs, module
    # A record type no import statement names and no source asks for stays source-only.
    assert not any("/LOC." in name for name in pycs)
    everything = package.build(bytecode=package.BytecodeOptions(runtime, "all"))
    sources = [name for name in everything.entries if name.endswith(".py")]
    assert len(pycs) < sum(name.endswith(".pyc") for name in everything.entries) == len(sources)


def test_without_sources_each_compiled_module_ships_as_a_pyc_in_its_place(runtime: package.RuntimePython) -> None:
    built = package.build(bytecode=package.BytecodeOptions(runtime, "imported", keep_sources=False))
    assert "cachebridge/handler.pyc" in built.entries and "cachebridge/handler.py" not in built.entries
    assert "dns/rdtypes/ANY/LOC.py" in built.entries  # not imported: its source stays
    assert not any("__pycache__" in name for name in built.entries)
    assert built.size < package.build(bytecode=package.BytecodeOptions(runtime, "imported")).size


def test_module_and_function_docstrings_are_left_out_class_docstrings_kept(runtime: package.RuntimePython, tmp_path: Path) -> None:
    built = package.build(bytecode=package.BytecodeOptions(runtime, "all", keep_sources=False))
    code = tmp_path / "task"
    with zipfile.ZipFile(io.BytesIO(built.data)) as archive:
        archive.extractall(code)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import dns.resolver, cachebridge.handler; "
        "print(repr(dns.resolver.__doc__)); print(repr(cachebridge.handler.clear_caches.__doc__)); "
        "print(dns.resolver.NoNameservers())"
    )
    runtime_path = str(Path(__import__("boto3").__file__).parents[1])  # boto3, as the runtime provides it
    done = subprocess.run([sys.executable, "-B", "-c", script, str(code)], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": runtime_path, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    module_doc, function_doc, message = done.stdout.strip().splitlines()
    assert module_doc == function_doc == "None"
    # dnspython's exceptions take their message from the class docstring.
    assert "All nameservers failed to answer the query" in message


def test_an_interpreter_of_another_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"is CPython \d+\.\d+, the Lambda runtime's is CPython"):
        package.find_runtime_python(sys.executable, OTHER_VERSION)
    monkeypatch.setattr(package, "RUNTIME_VERSION", OTHER_VERSION)
    result = CliRunner().invoke(cli, ["package", "--output", "unused.zip", "--bytecode", "--python", sys.executable])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --python: ") and "--python PATH" in lines[0]


def test_a_missing_or_broken_interpreter_is_refused_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    broken = empty / "python-broken"
    broken.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    broken.chmod(0o755)
    runner = CliRunner()
    cases = {
        (): "no python3.13 on PATH",
        ("--python", str(tmp_path / "nowhere" / "python3.13")): "not found",
        ("--python", str(broken)): "does not run (pyenv: python3.13: command not found)",
    }
    for args, problem in cases.items():
        with runner.isolated_filesystem(tmp_path):
            result = runner.invoke(cli, ["package", "--output", "x.zip", "--bytecode", *args], env={"PATH": str(empty)})
            assert result.exit_code == 2, (args, result.output)
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and problem in lines[0], (args, lines)
            assert not Path("x.zip").exists()  # refused before anything was built


def test_python_without_bytecode_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["package", "--output", "x.zip", "--python", sys.executable])
    assert result.exit_code == 2 and "--bytecode" in result.output


def test_the_package_command_builds_the_bytecode_zip(runtime: package.RuntimePython, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package, "RUNTIME_VERSION", THIS_VERSION)
    out = tmp_path / "lambda.zip"
    result = CliRunner().invoke(cli, ["package", "--output", str(out), "--bytecode", "--python", sys.executable, "--json"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == package.build(bytecode=package.BytecodeOptions(runtime)).data


def test_deploy_refuses_a_missing_interpreter_before_reading_anything(tmp_path: Path) -> None:
    args = ["deploy", "--stack-name", "s", "--replication-group", "rg", "--vpc", "vpc-0a1b2c3d",
            "--subnets", "subnet-0a1b2c3d", "--allowed-cidr", "203.0.113.0/24", "--region", "us-east-1",
            "--bytecode", "--python", str(tmp_path / "python3.13")]
    # No credentials and no endpoint: reaching AWS would fail with exit 1, not 2.
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"Error: --python: {tmp_path / 'python3.13'} not found: "
                                                  "bytecode for the Lambda runtime needs its Python 3.13 "
                                                  "(accepted: --python PATH to a CPython 3.13, or python3.13 on PATH)"]



def test_with_sources_kept_a_pyc_another_python_cannot_use_falls_back_to_its_source(runtime: package.RuntimePython, tmp_path: Path) -> None:
    code = tmp_path / "task"
    with zipfile.ZipFile(io.BytesIO(package.build(bytecode=package.BytecodeOptions(runtime)).data)) as archive:
        archive.extractall(code)
    pycs = list(code.rglob("*.pyc"))
    assert pycs
    for pyc in pycs:  # as if compiled by another version: a magic number this Python rejects
        data = pyc.read_bytes()
        pyc.write_bytes(b"\x00\x00\r\n" + data[4:])
    runtime_path = str(Path(__import__("boto3").__file__).parents[1])
    done = subprocess.run(
        [sys.executable, "-B", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import cachebridge.handler; "
         "print(cachebridge.handler.__file__)", str(code)],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": runtime_path, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(code / "cachebridge" / "handler.py")


def test_bytecode_choices_without_bytecode_are_usage_errors() -> None:
    for args, field in ((["--no-sources"], "--no-sources"), (["--bytecode-modules", "all"], "--bytecode-modules")):
        result = CliRunner().invoke(cli, ["package", "--output", "x.zip", *args])
        assert result.exit_code == 2, result.output
        assert result.output.strip() == f"Error: {field}: only with --bytecode (accepted: --bytecode)"
