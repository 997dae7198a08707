#!/usr/bin/env bash
# The whole test suite, as CI runs it (make test). The unit and integration tests run on two
# workers (pytest-xdist; a test module stays on one worker, so its module fixtures hold as
# written); the end-to-end tests then run alone, because they time failovers in the sandbox
# and a second worker's load would skew what they time. Arguments go to both runs (-x, -k).
# CACHEBRIDGE_TEST_WORKERS sets the number of workers (default 2; 0 runs them in-process).
set -uo pipefail
cd "$(dirname "$0")/.."

status=0
run() {
    "$@"
    local rc=$?
    # 5: no test collected, which a -k given for one part means for the other.
    if [ "$rc" -ne 0 ] && ! { [ "$rc" -eq 5 ] && [ "$filtered" = yes ]; }; then
        status=$rc
    fi
}
filtered=no
[ "$#" -gt 0 ] && filtered=yes
run .venv/bin/python -m pytest -q -n "${CACHEBRIDGE_TEST_WORKERS:-2}" --dist loadfile tests/unit tests/integration "$@"
run .venv/bin/python -m pytest -q tests/e2e "$@"
exit "$status"
