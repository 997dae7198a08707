#!/usr/bin/env bash
# The demo: the two layouts side by side under the NLB profile that follows AWS's
# documentation. For each layout: bring the sandbox up, fail over twice (planned, then by
# killing the primary) while a client writes through the NLB, show what the client saw,
# and tear down. Every delay the NLB stand-in models runs TIME_SCALE times as long, so the
# demo takes a few minutes; the figures it prints are wall seconds at that scale.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --demo

STATE_DIR="${STATE_DIR:-.cachebridge-sandbox}"
TIME_SCALE="${TIME_SCALE:-0.05}"
CB=.venv/bin/cachebridge

trap '$CB sandbox down --state-dir "$STATE_DIR" >/dev/null 2>&1 || true' EXIT
echo "NLB stand-in: documented profile at time scale $TIME_SCALE: registration 120 s runs as" \
     "$(awk "BEGIN{print 120*$TIME_SCALE}") s, listener propagation 10 s as $(awk "BEGIN{print 10*$TIME_SCALE}") s"
for layout in switch retarget; do
    echo
    echo "######## $layout layout ########"
    $CB sandbox up --state-dir "$STATE_DIR" --layout "$layout" --nlb-profile documented --time-scale "$TIME_SCALE" --detect-delay 1
    echo
    echo "== $layout: planned failover (TestFailover) =="
    $CB drill --state-dir "$STATE_DIR" --duration 20 --failover-after 3 --plot "drill-$layout-planned.png"
    echo
    echo "== $layout: unplanned failover (the primary's redis-server is killed) =="
    $CB drill --state-dir "$STATE_DIR" --kill-primary --duration 20 --failover-after 3 --plot "drill-$layout-unplanned.png"
    $CB sandbox down --state-dir "$STATE_DIR"
done
