"""The Lambda zip: cachebridge's runtime modules and dnspython, nothing else.

The Lambda runtime provides boto3, so the zip holds only what it does not: the
``cachebridge`` package without the parts that never run in Lambda (the CLI, the sandbox,
deployment, drills) and dnspython's ``dns`` package without the parts that need what the
function never has (``DNS_EXCLUDED``: DNSSEC needs ``cryptography``, DNS over QUIC
``aioquic``, the async resolver an event loop, ``win32util`` Windows), both taken from the
running environment. Every module of ``dns`` that its resolver imports stays, and so does
every record type (``dns.rdtypes``, loaded by type when an answer holds one).

By default the zip holds sources only: ``/var/task`` is read-only, so a new instance
compiles what it imports, on every cold start. ``build(bytecode=...)`` (``cachebridge
package --bytecode``) adds bytecode for the Lambda runtime's Python (``RUNTIME_VERSION``),
compiled by an interpreter of that version (``find_runtime_python``; bytecode is specific
to a version, so the one that builds the zip cannot stand in for it). The pycs are
hash-based and unchecked (PEP 552): the import system loads them without reading or
checking the source, as suits a zip that is content-addressed and never changes (and
whose extracted mtimes say nothing). They are compiled with ``-X no_debug_ranges``
(tracebacks lose their column markers, not their lines), without module and function
docstrings (class docstrings stay), with a fixed hash seed, and named as under
``/var/task``, so the same sources and interpreter version give the same bytes.
``BytecodeOptions.modules`` chooses which modules get bytecode: ``"imported"`` (the
default), those the handler can import (its import graph, followed statically, and the
record types its DNS answers load), or ``"all"``. The sources stay beside their pycs
(``keep_sources``): tracebacks show source lines, and a pyc the runtime cannot use (a
magic number of another version) falls back to its source instead of failing the import;
without them each compiled module ships as a ``.pyc`` in its source's place (a smaller
zip). Either way a new instance starts in about a third less time; the
README has the figures.

The zip is reproducible: entries are sorted, every entry has the same timestamp
(1980-01-01 00:00:00, the earliest a zip can hold) and permissions (0644), no bytecode of
the building machine is taken (only what ``bytecode`` compiles), and every entry is
deflated at one fixed level. The same sources give the same bytes, so the S3 key (``cachebridge/lambda-<sha256[:16]>.zip``)
names the content: a changed package gets a new key, which is what makes CloudFormation
update the function, and an unchanged one is neither uploaded nor updated again.

Bindings too many for Lambda's 4 KB of environment travel in the zip as
``CONFIG_FILE_NAME`` (``build(config=...)``): versioned with the code under the same
content-addressed key, read from local disk on a cold start with no API call and no extra
permission. Changing them deploys a new zip, as changing the environment would update the
function anyway.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError
from .template.controller import RUNTIME

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
    "RUNTIME_VERSION",
    "BYTECODE_MODULES",
    "RuntimePython",
    "BytecodeOptions",
    "find_runtime_python",
    "imported_modules",
]

KEY_PREFIX = "cachebridge"
CONFIG_FILE_NAME = "cachebridge-config.json"  # at the zip's root: LAMBDA_TASK_ROOT/<this>
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644  # regular file, rw-r--r--
_COMPRESS_LEVEL = 9
# Paths relative to the cachebridge package that never run in Lambda.
EXCLUDED = ("cli.py", "cli_render.py", "endpoints.py", "sandbox", "deploy", "drill.py", "drill", "cluster_drill.py")
# Paths relative to dnspython's package that only run with what Lambda lacks (see above).
DNS_EXCLUDED = (
    "dnssec.py", "dnssecalgs", "dnssectypes.py",
    "quic/_asyncio.py", "quic/_common.py", "quic/_sync.py", "quic/_trio.py",
    "asyncresolver.py", "_asyncio_backend.py", "_trio_backend.py",
    "win32util.py",
)
_SUFFIXES = (".py",)
_MARKERS = ("py.typed",)

# The Lambda runtime's Python, from the template's ``Runtime`` ("python3.13").
RUNTIME_VERSION: tuple[int, int] = tuple(int(part) for part in RUNTIME.removeprefix("python").split("."))  # type: ignore[assignment]
BYTECODE_MODULES = ("imported", "all")
# Record types a source's answers hold (A, AAAA, a CNAME chain): dnspython imports their
# modules by name when it parses an answer, which no import statement shows.
_ANSWER_RECORD_MODULES = ("dns.rdtypes.IN.A", "dns.rdtypes.IN.AAAA", "dns.rdtypes.ANY.CNAME")
_LAMBDA_TASK_ROOT = "/var/task"  # what co_filename names; the import system fixes it up on load
_PROBE = (
    "import importlib.util, json, sys; print(json.dumps({'version': list(sys.version_info[:2]), "
    "'implementation': sys.implementation.name, 'cache_tag': sys.implementation.cache_tag, "
    "'magic': importlib.util.MAGIC_NUMBER.hex()}))"
)
# Run by the runtime's interpreter: {archive name: base64 source} on stdin, the same names
# with their pycs on stdout. The header is PEP 552's: magic, flags 0b01 (hash-based, source
# not checked), the source's hash, then the marshalled code object. Module and function
# docstrings are left out (what -OO drops, a sixth of the compressed bytecode; nothing
# that runs reads them), class docstrings kept: dnspython's exceptions use theirs as the
# message. Asserts stay, and every line keeps its number.
_COMPILE = r"""
import ast, base64, importlib.util, json, marshal, sys

def without_docstrings(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                if len(body) == 1:
                    body[0] = ast.copy_location(ast.Pass(), body[0])
                else:
                    del body[0]
    return tree

sources = json.load(sys.stdin)
out = {}
for name in sorted(sources):
    data = base64.b64decode(sources[name])
    filename = sys.argv[1] + "/" + name
    tree = without_docstrings(ast.parse(data, filename))
    code = compile(tree, filename, "exec", dont_inherit=True, optimize=0)
    header = importlib.util.MAGIC_NUMBER + (0b01).to_bytes(4, "little") + importlib.util.source_hash(data)
    out[name] = base64.b64encode(header + marshal.dumps(code)).decode("ascii")
json.dump(out, sys.stdout)
"""
COMPILE_TIMEOUT_S = 300.0  # the whole package, a few seconds on any machine
_PYTHON_HINT = "--python PATH to a CPython {v}, or python{v} on PATH"


@dataclass(frozen=True)
class RuntimePython:
    """An interpreter that compiles bytecode for the Lambda runtime: its path, version,
    cache tag (``cpython-313``: the pyc names it looks for) and magic number (hex)."""

    path: str
    version: tuple[int, int]
    cache_tag: str
    magic: str


@dataclass(frozen=True)
class BytecodeOptions:
    """What ``build`` compiles: ``modules`` "imported" (what the handler can import) or
    "all"; ``keep_sources`` ships each compiled module's source beside its pyc (in
    ``__pycache__``), otherwise the pyc takes the source's place."""

    python: RuntimePython
    modules: Literal["imported", "all"] = "imported"
    keep_sources: bool = True

    def __post_init__(self) -> None:
        if self.modules not in BYTECODE_MODULES:
            raise ConfigError("--bytecode-modules", f"{self.modules!r} is not a choice", ", ".join(BYTECODE_MODULES))


def find_runtime_python(python: str | None = None, version: tuple[int, int] | None = None) -> RuntimePython:
    """The interpreter ``python`` names (a path or a command), else ``python<version>`` on
    PATH, checked to run and to be CPython ``version`` (default ``RUNTIME_VERSION``);
    ``ConfigError`` (one line) otherwise."""
    version = version or RUNTIME_VERSION
    wanted = f"{version[0]}.{version[1]}"
    hint = _PYTHON_HINT.format(v=wanted)
    command = python or f"python{wanted}"
    path = shutil.which(command) if os.sep not in command else command
    if path is None or not os.path.isfile(path):
        where = f"{command} not found" if python else f"no python{wanted} on PATH"
        raise ConfigError("--python", f"{where}: bytecode for the Lambda runtime needs its Python {wanted}", hint)
    try:
        done = subprocess.run([path, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise ConfigError("--python", f"{path} does not run: {exc.strerror}", hint) from None
    except subprocess.TimeoutExpired:
        raise ConfigError("--python", f"{path} did not answer in 60 s", hint) from None
    if done.returncode != 0:
        first = next((line.strip() for line in done.stderr.splitlines() if line.strip()), f"exit {done.returncode}")
        raise ConfigError("--python", f"{path} does not run ({first})", hint)
    try:
        probe = json.loads(done.stdout.strip().splitlines()[-1])
        found = (int(probe["version"][0]), int(probe["version"][1]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise ConfigError("--python", f"{path} is not a Python interpreter", hint) from None
    if probe["implementation"] != "cpython" or found != version:
        name = "CPython" if probe["implementation"] == "cpython" else str(probe["implementation"])
        raise ConfigError("--python", f"{path} is {name} {found[0]}.{found[1]}, the Lambda runtime's is CPython {wanted}", hint)
    # The cache tag names the pyc entries and the magic is checked against every pyc: an
    # answer that is not CPython's own for this version (a wrapper answering the probe
    # itself) would name entries anywhere or ship bytecode the runtime cannot load.
    cache_tag, magic = str(probe.get("cache_tag")), str(probe.get("magic"))
    if cache_tag != f"cpython-{version[0]}{version[1]}" or not re.fullmatch(r"[0-9a-f]{4}0d0a", magic):
        raise ConfigError("--python", f"{path} answered as CPython {wanted} with cache tag {cache_tag!r} and magic {magic!r}: not CPython's", hint)
    return RuntimePython(path=path, version=found, cache_tag=cache_tag, magic=magic)


def imported_modules(sources: Mapping[str, bytes]) -> tuple[str, ...]:
    """The archive names of the modules the handler can import: its import graph as the
    standard library's ``modulefinder`` follows it (every import statement, those inside
    functions too), with the record types of the answers it reads."""
    import modulefinder
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cachebridge-package-") as tmp:
        root = Path(tmp)
        for name, data in sources.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        finder = modulefinder.ModuleFinder(path=[str(root)])
        for module in ("cachebridge.handler", *_ANSWER_RECORD_MODULES):
            finder.import_hook(module)
        found = {
            Path(module.__file__).resolve().relative_to(root.resolve()).as_posix()
            for module in finder.modules.values()
            if module.__file__ and Path(module.__file__).resolve().is_relative_to(root.resolve())
        }
    return tuple(sorted(name for name in found if name in sources))


def _compile(python: RuntimePython, sources: Mapping[str, bytes]) -> dict[str, bytes]:
    # A fixed hash seed: marshal writes a set constant in iteration order, which follows
    # the string hashes. No other PYTHON* variable reaches the compiler.
    env = {"PYTHONHASHSEED": "0", "PYTHONNODEBUGRANGES": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    payload = json.dumps({name: base64.b64encode(data).decode("ascii") for name, data in sources.items()})
    try:
        done = subprocess.run(
            [python.path, "-s", "-X", "no_debug_ranges", "-c", _COMPILE, _LAMBDA_TASK_ROOT],
            input=payload, capture_output=True, text=True, env=env, timeout=COMPILE_TIMEOUT_S,
        )
    except OSError as exc:  # gone or changed since the probe
        raise ConfigError("--python", f"{python.path} does not run: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise ConfigError("--python", f"{python.path} did not compile the package in {COMPILE_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise ConfigError("--python", f"{python.path} could not compile the package: {last}")
    try:
        # The last line: a shim may print a notice on stdout before the interpreter runs.
        compiled = json.loads((done.stdout.strip().splitlines() or [""])[-1])
        pycs = {name: base64.b64decode(compiled[name], validate=True) for name in sources}
    except (ValueError, KeyError, TypeError):
        raise ConfigError("--python", f"{python.path} did not answer with the package's bytecode (not a CPython {python.version[0]}.{python.version[1]}?)") from None
    magic = bytes.fromhex(python.magic)
    wrong = sorted(name for name, pyc in pycs.items() if len(pyc) < 16 or pyc[:4] != magic)
    if wrong:
        raise ConfigError("--python", (
            f"{python.path} wrote bytecode for another Python than the CPython {python.version[0]}.{python.version[1]} "
            f"it answered as ({wrong[0]}: magic {pycs[wrong[0]][:4].hex() or 'none'}, expected {python.magic})"
        ))
    return pycs


def _with_bytecode(contents: dict[str, bytes], options: BytecodeOptions) -> dict[str, bytes]:
    sources = {name: data for name, data in contents.items() if name.endswith(".py")}
    chosen = sorted(sources) if options.modules == "all" else imported_modules(sources)
    out = dict(contents)
    for name, pyc in _compile(options.python, {name: sources[name] for name in chosen}).items():
        if options.keep_sources:
            folder, _, file = name.rpartition("/")
            out[f"{folder}/__pycache__/{file.removesuffix('.py')}.{options.python.cache_tag}.pyc"] = pyc
        else:
            del out[name]
            out[name + "c"] = pyc
    return out


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


def build(
    package_dir: Path | None = None,
    dns_dir: Path | None = None,
    *,
    config: bytes | None = None,
    bytecode: BytecodeOptions | None = None,
) -> LambdaPackage:
    """Build the zip in memory from the installed cachebridge and dnspython (or the given
    package directories); ``config`` (JSON bindings) is shipped as ``CONFIG_FILE_NAME``;
    ``bytecode`` adds pycs compiled by the runtime's interpreter (see the module's doc)."""
    contents: dict[str, bytes] = {name: path.read_bytes() for name, path in runtime_files(package_dir, dns_dir)}
    if bytecode is not None:
        contents = _with_bytecode(contents, bytecode)
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
