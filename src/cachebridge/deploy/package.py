"""The Lambda zip: cachebridge's runtime modules and dnspython, nothing else.

The Lambda runtime provides boto3, so the zip holds only what it does not: the
``cachebridge`` package without the parts that never run in Lambda (the CLI, the sandbox,
deployment, drills) and dnspython's ``dns`` package without the parts that need what the
function never has (``DNS_EXCLUDED``: DNSSEC needs ``cryptography``, DNS over QUIC
``aioquic``, the async resolver an event loop, ``win32util`` Windows), both taken from the
running environment. Every module of ``dns`` that its resolver imports stays, and so does
every record type (``dns.rdtypes``, loaded by type when an answer holds one).

The zip holds sources only, no bytecode: the runtime's Python (3.13) is not the one that
builds the zip, and bytecode is specific to its version. ``/var/task`` is read-only, so a
new instance compiles what it imports; fewer and smaller imports are what shortens that.

The zip is reproducible: entries are sorted, every entry has the same timestamp
(1980-01-01 00:00:00, the earliest a zip can hold) and permissions (0644), there is no
``__pycache__`` or ``.pyc``, and every entry is deflated at one fixed level. The same
sources give the same bytes, so the S3 key (``cachebridge/lambda-<sha256[:16]>.zip``)
names the content: a changed package gets a new key, which is what makes CloudFormation
update the function, and an unchanged one is neither uploaded nor updated again.

Bindings too many for Lambda's 4 KB of environment travel in the zip as
``CONFIG_FILE_NAME`` (``build(config=...)``): versioned with the code under the same
content-addressed key, read from local disk on a cold start with no API call and no extra
permission. Changing them deploys a new zip, as changing the environment would update the
function anyway.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONFIG_FILE_NAME",
    "KEY_PREFIX",
    "ZIP_TIMESTAMP",
    "EXCLUDED",
    "DNS_EXCLUDED",
    "LambdaPackage",
    "build",
    "runtime_files",
    "s3_key",
]

KEY_PREFIX = "cachebridge"
CONFIG_FILE_NAME = "cachebridge-config.json"  # at the zip's root: LAMBDA_TASK_ROOT/<this>
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644  # regular file, rw-r--r--
_COMPRESS_LEVEL = 9
# Paths relative to the cachebridge package that never run in Lambda.
EXCLUDED = ("cli.py", "endpoints.py", "sandbox", "deploy", "drill.py", "drill", "cluster_drill.py")
# Paths relative to dnspython's package that only run with what Lambda lacks (see above).
DNS_EXCLUDED = (
    "dnssec.py", "dnssecalgs", "dnssectypes.py",
    "quic/_asyncio.py", "quic/_common.py", "quic/_sync.py", "quic/_trio.py",
    "asyncresolver.py", "_asyncio_backend.py", "_trio_backend.py",
    "win32util.py",
)
_SUFFIXES = (".py",)
_MARKERS = ("py.typed",)


@dataclass(frozen=True)
class LambdaPackage:
    """A built zip: its bytes, their SHA-256 and the archive names it holds (sorted)."""

    data: bytes
    sha256: str
    entries: tuple[str, ...]

    @property
    def key(self) -> str:
        return s3_key(self.sha256)

    @property
    def size(self) -> int:
        return len(self.data)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.data)
        return path


def s3_key(sha256: str, prefix: str = KEY_PREFIX) -> str:
    return f"{prefix}/lambda-{sha256[:16]}.zip"


def _wanted(path: Path) -> bool:
    return path.suffix in _SUFFIXES or path.name in _MARKERS


def _walk(root: Path, arc_root: str, excluded: tuple[str, ...] = ()) -> Iterator[tuple[str, Path]]:
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if not path.is_file() or not _wanted(path):
            continue
        if "__pycache__" in rel.parts or any(part.startswith(".") for part in rel.parts):
            continue
        if excluded and (rel.parts[0] in excluded or rel.as_posix() in excluded):
            continue
        yield f"{arc_root}/{rel.as_posix()}", path


def _default_roots() -> tuple[Path, Path]:
    import dns

    import cachebridge

    return Path(cachebridge.__file__).resolve().parent, Path(dns.__file__).resolve().parent


def runtime_files(package_dir: Path | None = None, dns_dir: Path | None = None) -> list[tuple[str, Path]]:
    """``(archive name, source file)`` for every file the zip holds, sorted by name."""
    default_package, default_dns = _default_roots() if package_dir is None or dns_dir is None else (None, None)
    package_dir = Path(package_dir or default_package)  # type: ignore[arg-type]
    dns_dir = Path(dns_dir or default_dns)  # type: ignore[arg-type]
    files = dict(_walk(package_dir, "cachebridge", EXCLUDED))
    files.update(_walk(dns_dir, "dns", DNS_EXCLUDED))
    if "cachebridge/handler.py" not in files:
        raise FileNotFoundError(f"{package_dir} has no handler.py: not the cachebridge package")
    if "dns/resolver.py" not in files:
        raise FileNotFoundError(f"{dns_dir} has no resolver.py: not dnspython's dns package")
    return sorted(files.items())


def build(package_dir: Path | None = None, dns_dir: Path | None = None, *, config: bytes | None = None) -> LambdaPackage:
    """Build the zip in memory from the installed cachebridge and dnspython (or the given
    package directories); ``config`` (JSON bindings) is shipped as ``CONFIG_FILE_NAME``."""
    contents: dict[str, bytes] = {name: path.read_bytes() for name, path in runtime_files(package_dir, dns_dir)}
    if config is not None:
        contents[CONFIG_FILE_NAME] = config
    names = sorted(contents)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.external_attr = _FILE_MODE << 16
            info.create_system = 3  # Unix, whatever system builds it
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, contents[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL)
    data = buffer.getvalue()
    return LambdaPackage(data=data, sha256=hashlib.sha256(data).hexdigest(), entries=tuple(names))
