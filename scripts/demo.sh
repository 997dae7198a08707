#!/usr/bin/env bash
# The demo: bring the sandbox up, fail over twice (planned, then by killing the primary)
# while a client writes through the NLB, show what the client saw, and tear down.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --demo

STATE_DIR="${STATE_DIR:-.cachebridge-sandbox}"
CB=.venv/bin/cachebridge

trap '$CB sandbox down --state-dir "$STATE_DIR"' EXIT
$CB sandbox up --state-dir "$STATE_DIR"
echo
echo "== planned failover (TestFailover) =="
$CB drill --state-dir "$STATE_DIR" --duration 20 --plot drill-planned.png
echo
echo "== unplanned failover (the primary's redis-server is killed) =="
$CB drill --state-dir "$STATE_DIR" --kill-primary --duration 20 --plot drill-unplanned.png
