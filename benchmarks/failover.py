"""Failover drills against the sandbox: median and max of detect_s, retarget_s and
write_unavailable_s, per failover kind, under two health-check settings.

Runs ``cachebridge sandbox up``, N drills of each kind (planned: TestFailover;
unplanned: kill-primary), then ``sandbox down``; once with the template's defaults
(interval 10 s, healthy threshold 2) and once with AWS's defaults for TCP health checks
(interval 30 s, threshold 5), so the effect of the template's settings shows.

Targets, with event delivery: detect_s <= 2 s after DNS flips; retarget_s <= detect_s + 1 s.

    python benchmarks/failover.py [--drills 5] [--duration 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SETTINGS = {
    "template defaults": [],
    "AWS defaults (interval 30 s, threshold 5)": ["--health-check-interval", "30", "--healthy-threshold", "5"],
}
KINDS = {"planned": [], "unplanned": ["--kill-primary"]}
METRICS = ("detect_s", "detect_after_dns_s", "retarget_s", "retarget_minus_detect_s", "write_unavailable_s", "healthy_s")
# A registration delay shorter than the stand-in's default keeps each drill short while
# still showing how long the new primary's health checks take under each setting.
REGISTRATION_DELAY_S = "5"


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cachebridge.cli", *args], capture_output=True, text=True, timeout=timeout)


def run_setting(name: str, flags: list[str], drills: int, duration: float) -> dict[str, Any]:
    state_dir = Path(tempfile.mkdtemp(prefix="cachebridge-bench-"))
    # The drill measures the retarget layout's target group.
    up = cli("sandbox", "up", "--state-dir", str(state_dir), "--layout", "retarget", "--registration-delay", REGISTRATION_DELAY_S, "--json", *flags)
    if up.returncode != 0:
        raise SystemExit(f"sandbox up failed: {up.stderr}")
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    try:
        for i in range(drills):
            for kind, kind_flags in KINDS.items():
                drill = cli("drill", "--state-dir", str(state_dir), "--duration", str(duration), "--failover-after", "3",
                            "--rate", "50", "--json", *kind_flags)
                if drill.returncode != 0:
                    raise SystemExit(f"drill failed: {drill.stderr}")
                summary = json.loads(drill.stdout)
                if summary["detect_s"] is not None and summary["dns_flip_s"] is not None:
                    summary["detect_after_dns_s"] = round(summary["detect_s"] - summary["dns_flip_s"], 3)
                if summary["detect_s"] is not None and summary["retarget_s"] is not None:
                    summary["retarget_minus_detect_s"] = round(summary["retarget_s"] - summary["detect_s"], 3)
                results[kind].append(summary)
                print(f"  {name} / {kind} #{i + 1}: detect {summary['detect_s']} s, retarget {summary['retarget_s']} s, "
                      f"write unavailable {summary['write_unavailable_s']} s, lost {summary['lost_acknowledged_writes']}",
                      file=sys.stderr)
    finally:
        cli("sandbox", "down", "--state-dir", str(state_dir))
    return {kind: _stats(runs) for kind, runs in results.items()}


def _stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"drills": len(runs), "lost_acknowledged_writes": [r["lost_acknowledged_writes"] for r in runs]}
    for metric in METRICS:
        values = [r[metric] for r in runs if r.get(metric) is not None]
        out[metric] = {"median": round(statistics.median(values), 3), "max": round(max(values), 3)} if values else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drills", type=int, default=5)
    parser.add_argument("--duration", type=float, default=25.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.pop("AWS_ENDPOINT_URL", None)
    report = {name: run_setting(name, flags, args.drills, args.duration) for name, flags in SETTINGS.items()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"\n{'setting':<44} {'kind':<10} " + " ".join(f"{m + ' med/max':>32}" for m in METRICS))
    for name, kinds in report.items():
        for kind, stats in kinds.items():
            cells = []
            for metric in METRICS:
                value = stats[metric]
                cells.append(f"{value['median']:>15.3f}/{value['max']:<16.3f}" if value else f"{'-':>32}")
            print(f"{name:<44} {kind:<10} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
