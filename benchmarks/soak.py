"""Soak: many consecutive sandbox failovers, alternating planned and unplanned, each
through the NLB under write load, and what the controller did across all of them.

Starts a sandbox of its own (``cachebridge.sandbox.control.up``), runs
``cachebridge.sandbox.soak.run_soak`` and stops the sandbox. Prints:

- failovers followed: after each failover the target group's only live target is the node
  that answers ``ROLE`` ``master``;
- lost acknowledged writes on planned failovers (``FAILOVER TO`` waits for the replica, so
  this must be 0; unplanned failovers lose what the replica had not received, printed
  apart);
- wrong deregistrations: a target that left the group while its node answered ``master``
  (sampled every 100 ms across the whole soak);
- max ``write_unavailable_s`` (longest stretch without a successful write, per kind).

    python benchmarks/soak.py [--count 100] [--time-scale 1.0] [--rate 40] [--json]

``--time-scale`` multiplies each drill's load time, the sandbox's registration delay and
its failure-detection and rejoin times (0.5 halves them). A 100-failover run at time scale
1 takes about 40 minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from cachebridge.sandbox.control import down, up
from cachebridge.sandbox.soak import FailoverOutcome, SoakReport, run_soak, soak_options


def run(count: int, time_scale: float, rate: float, quiet: bool = False) -> SoakReport:
    state_dir = Path(tempfile.mkdtemp(prefix="cachebridge-soak-"))
    state = up(soak_options(state_dir, time_scale))

    def progress(outcome: FailoverOutcome) -> None:
        if not quiet:
            print(f"  #{outcome.index + 1:>3} {outcome.kind:<9} followed={outcome.followed!s:<5} "
                  f"lost={outcome.lost_acknowledged_writes:<3} unavailable={outcome.write_unavailable_s:.3f}s "
                  f"detect={outcome.detect_s} retarget={outcome.retarget_s}", file=sys.stderr, flush=True)
            for error in outcome.controller_errors:
                print(f"        controller: {error}", file=sys.stderr, flush=True)

    try:
        return run_soak(state, count=count, time_scale=time_scale, rate=rate, progress=progress)
    finally:
        down(state_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100, help="failovers (default 100)")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=40.0, help="writes per second (default 40)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.count <= 1000 or not 0.1 <= args.time_scale <= 10:
        parser.error("--count 1..1000, --time-scale 0.1..10")
    report = run(args.count, args.time_scale, args.rate, quiet=args.json)
    summary = report.summary()
    if args.json:
        print(json.dumps({**summary, "wrong": [vars(w) for w in report.wrong_deregistrations],
                          "not_followed": [vars(o) for o in report.outcomes if not o.followed]}, indent=2, default=str))
    else:
        print(f"\nsoak: {summary['failovers']} failovers ({summary['planned']} planned, {summary['unplanned']} unplanned) "
              f"in {summary['duration_s']} s")
        for key in ("failovers_followed", "lost_acknowledged_writes_planned", "lost_acknowledged_writes_unplanned",
                    "wrong_deregistrations", "deregistrations_seen", "controller_errors", "max_write_unavailable_s",
                    "max_write_unavailable_s_planned", "max_write_unavailable_s_unplanned", "acknowledged_writes", "samples"):
            print(f"  {key:<36} {summary[key]}")
        for outcome in report.outcomes:
            if not outcome.followed:
                print(f"  not followed: #{outcome.index + 1} {outcome.kind}: group held {list(outcome.live_after)}, "
                      f"primary {outcome.new_primary}; controller: {'; '.join(outcome.controller_errors) or 'no error'}")
    ok = (summary["failovers_followed"] == summary["failovers"] and summary["wrong_deregistrations"] == 0
          and summary["lost_acknowledged_writes_planned"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
