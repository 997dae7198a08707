#!/usr/bin/env bash
# Installs what cachebridge's tests, sandbox and benchmarks need: redis-server (Debian
# package, when missing), a virtualenv in .venv with the pinned Python packages, checkov in
# .venv-checkov, and the latest cfn-lint in .venv-cfnlint-latest.
# With --demo, only what the demo needs: redis-server and .venv with the cli and sandbox
# extras (no test tools, no checkov, no cfn-lint).
# Safe to run again: .venv is reinstalled only when pyproject.toml changed; the latest
# cfn-lint is upgraded on every run.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    "") extras="dev" ;;
    --demo) extras="cli,sandbox" ;;
    *) echo "usage: scripts/bootstrap.sh [--demo]" >&2; exit 2 ;;
esac

PYTHON="${PYTHON:-python3}"

if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing redis-server with apt-get" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    else
        echo "bootstrap: redis-server is missing; install it (Debian/Ubuntu: sudo apt-get install redis-server)" >&2
        exit 1
    fi
fi

stamp=".venv/.cachebridge-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
# The dev extra holds cli and sandbox, so a test install serves the demo too.
if [ ! -x .venv/bin/python ] || { [ "$have" != "dev $want" ] && [ "$have" != "$extras $want" ]; }; then
    echo "bootstrap: creating .venv and installing cachebridge[$extras]" >&2
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
    echo "$extras $want" > "$stamp"
fi
[ "$extras" = "dev" ] || exit 0  # checkov is for the tests

# zsh, when apt-get can install it: the tests paste sandbox commands into zsh as well as bash.
if ! command -v zsh >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing zsh with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zsh >/dev/null \
        || echo "bootstrap: zsh not installed; the shell tests use bash alone" >&2
fi

# checkov pins an older boto3 than cachebridge's, so it gets a virtualenv of its own.
CHECKOV_VERSION="3.2.500"
if [ "$(.venv-checkov/bin/checkov --version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
    echo "bootstrap: installing checkov $CHECKOV_VERSION into .venv-checkov" >&2
    "$PYTHON" -m venv .venv-checkov
    .venv-checkov/bin/python -m pip install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

# cfn-lint's newest release, unpinned, in a virtualenv of its own: the template is linted
# with the pinned version (in .venv) and with the rules CloudFormation users get today
# (tests/unit/test_template.py runs both).
if [ ! -x .venv-cfnlint-latest/bin/cfn-lint ]; then
    echo "bootstrap: creating .venv-cfnlint-latest" >&2
    "$PYTHON" -m venv .venv-cfnlint-latest
fi
echo "bootstrap: installing the latest cfn-lint into .venv-cfnlint-latest" >&2
if ! .venv-cfnlint-latest/bin/python -m pip install -q --disable-pip-version-check -U cfn-lint; then
    # Offline: keep the release already there, if any.
    [ -x .venv-cfnlint-latest/bin/cfn-lint ] || exit 1
    echo "bootstrap: could not upgrade cfn-lint; keeping $(.venv-cfnlint-latest/bin/cfn-lint --version)" >&2
fi
