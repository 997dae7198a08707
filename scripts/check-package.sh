#!/usr/bin/env bash
# Checks cachebridge installs like a tool: builds the sdist and the wheel from a clean copy
# of the sources, runs twine check, installs the wheel with pipx (with the cli and sandbox
# extras) into a throwaway PIPX_HOME, and runs the installed cachebridge: --version, the
# template, the Lambda zip, and imports of what the sandbox and the drill load.
# Everything happens in a temporary directory, removed on exit. Needs build, twine and
# pipx (the dev extra) in the Python that runs it (PYTHON, default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/cachebridge-package.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A clean copy: what git tracks (plus untracked, not ignored, files), never .venv or dist.
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
done | xargs -0 cp --parents -t "$work/src"

echo "check-package: building sdist and wheel" >&2
"$PYTHON" -m build --sdist --wheel --outdir "$work/dist" "$work/src" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
wheel="$(ls "$work"/dist/cachebridge-*.whl)"
sdist="$(ls "$work"/dist/cachebridge-*.tar.gz)"

echo "check-package: twine check" >&2
"$PYTHON" -m twine check --strict "$wheel" "$sdist"

echo "check-package: what the wheel holds" >&2
"$PYTHON" - "$wheel" <<'PY'
import sys, zipfile
from pathlib import Path

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
src = Path("src/cachebridge")
wanted = {f"cachebridge/{p.relative_to(src).as_posix()}" for p in src.rglob("*")
          if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".typed", ".yaml", ".json")}
missing = sorted(wanted - names)
if missing:
    sys.exit(f"check-package: the wheel lacks {missing}")
print(f"check-package: the wheel holds all {len(wanted)} package files")
PY

echo "check-package: pipx install (cli, sandbox)" >&2
export PIPX_HOME="$work/pipx" PIPX_BIN_DIR="$work/bin" PIPX_MAN_DIR="$work/man"
"$PYTHON" -m pipx install --quiet --python "$("$PYTHON" -c 'import sys; print(sys.executable)')" "${wheel}[cli,sandbox]" >&2

cb="$work/bin/cachebridge"
version="$("$cb" --version)"
echo "check-package: $version" >&2
case "$version" in *"$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"*) ;; *) echo "check-package: unexpected version: $version" >&2; exit 1;; esac
"$cb" --help >/dev/null
"$cb" template --format yaml >"$work/template.yaml"
grep -q "AWSTemplateFormatVersion" "$work/template.yaml"
"$cb" package --output "$work/lambda.zip" >/dev/null
"$cb" endpoints --help >/dev/null
"$cb" sandbox --help >/dev/null
"$cb" drill --help >/dev/null
venv_python="$PIPX_HOME/venvs/cachebridge/bin/python"
"$venv_python" -c 'import cachebridge.sandbox.supervisor, cachebridge.sandbox.nlb_tls, cachebridge.sandbox.local_ca, cachebridge.drill, matplotlib, dnslib, moto, redis'
echo "check-package: ok ($(basename "$wheel"))"
