"""The Lambda zip is reproducible, holds only runtime code, and works on its own."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

import cachebridge
from cachebridge.deploy import package

from ..conftest import run_in_lambda_task, unpack_lambda_zip

EVENTS = Path(__file__).resolve().parents[1] / "events"


def test_building_twice_gives_the_same_bytes_and_key() -> None:
    first = package.build()
    second = package.build()
    assert first.data == second.data
    assert first.sha256 == second.sha256
    assert first.key == second.key
    assert first.key == f"cachebridge/lambda-{first.sha256[:16]}.zip"


def test_the_zip_holds_runtime_modules_and_dnspython_only() -> None:
    built = package.build()
    with zipfile.ZipFile(_bytes_file(built.data)) as archive:
        names = archive.namelist()
    assert names == sorted(names) == list(built.entries)
    assert "cachebridge/handler.py" in names
    assert "cachebridge/sources.py" in names
    assert "dns/resolver.py" in names
    assert all(n.startswith(("cachebridge/", "dns/")) for n in names)
    assert not any(n in ("cachebridge/cli.py", "cachebridge/cli_render.py", "cachebridge/drill.py") for n in names)
    assert not any(n.startswith(("cachebridge/sandbox/", "cachebridge/deploy/", "cachebridge/drill/")) for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_every_entry_has_fixed_metadata() -> None:
    with zipfile.ZipFile(_bytes_file(package.build().data)) as archive:
        infos = archive.infolist()
    assert infos
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr >> 16 == 0o100644
        assert info.compress_type == zipfile.ZIP_DEFLATED


def test_the_key_follows_the_content(tmp_path: Path) -> None:
    source = Path(cachebridge.__file__).parent
    copy = tmp_path / "cachebridge"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    dns_dir = Path(__import__("dns").__file__).parent
    same = package.build(copy, dns_dir)
    assert same.data == package.build().data
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "junk.cpython-311.pyc").write_bytes(b"junk")
    (copy / "sandbox" / "extra.py").write_text("x = 1\n")
    os.utime(copy / "handler.py", (0, 0))
    assert package.build(copy, dns_dir).data == same.data  # ignored files and mtimes change nothing
    (copy / "handler.py").write_text((copy / "handler.py").read_text() + "\n# changed\n")
    changed = package.build(copy, dns_dir)
    assert changed.key != same.key


def test_the_extracted_zip_imports_and_handles_an_event_without_the_venv(tmp_path: Path) -> None:
    code, runtime = task = unpack_lambda_zip(package.build().write(tmp_path / "lambda.zip"), tmp_path)

    script = r"""
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import cachebridge.handler
from cachebridge.events import parse_event
import cachebridge, dns, boto3
parsed = parse_event(json.loads(sys.argv[3]))
blocked = []
for name in ("click", "rich", "yaml", "moto", "cachebridge.cli", "cachebridge.sandbox", "cachebridge.deploy"):
    try:
        __import__(name)
    except ImportError:
        blocked.append(name)
print(json.dumps({
    "cachebridge": cachebridge.__file__,
    "dns": dns.__file__,
    "boto3": boto3.__file__,
    "handler": callable(cachebridge.handler.handler),
    "trigger": parsed.trigger.kind if parsed.trigger else None,
    "blocked": blocked,
    "path": sys.path,
}))
"""
    event = (EVENTS / "schedule.json").read_text()
    result = run_in_lambda_task(task, script, event, write_bytecode=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["cachebridge"].startswith(str(code))
    assert seen["dns"].startswith(str(code))
    assert seen["boto3"].startswith(str(runtime))
    assert seen["handler"] is True
    assert seen["trigger"] == "schedule"
    assert sorted(seen["blocked"]) == sorted(
        ["click", "rich", "yaml", "moto", "cachebridge.cli", "cachebridge.sandbox", "cachebridge.deploy"]
    )
    assert not any("site-packages" in p for p in seen["path"])


def _bytes_file(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


@pytest.mark.parametrize("missing", ["package", "dns"])
def test_wrong_directories_are_refused(tmp_path: Path, missing: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    package_dir = empty if missing == "package" else Path(cachebridge.__file__).parent
    dns_dir = empty if missing == "dns" else Path(__import__("dns").__file__).parent
    with pytest.raises(FileNotFoundError):
        package.build(package_dir, dns_dir)


def test_cli_package_writes_the_same_zip_every_time(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cachebridge.cli import cli

    runner = CliRunner()
    first = runner.invoke(cli, ["package", "--output", str(tmp_path / "a.zip"), "--json"])
    second = runner.invoke(cli, ["package", "--output", str(tmp_path / "b.zip"), "--json"])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert json.loads(first.output)["key"] == json.loads(second.output)["key"] == package.build().key
    assert "location" not in json.loads(first.output)  # --output alone uploads nothing


def test_cli_package_needs_a_destination() -> None:
    from click.testing import CliRunner

    from cachebridge.cli import cli

    result = CliRunner().invoke(cli, ["package"])
    assert result.exit_code == 2
    assert "--bucket" in result.output and "--output" in result.output
