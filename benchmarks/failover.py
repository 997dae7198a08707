"""Failover drills against the sandbox, layout x NLB profile x failover kind, and a sweep of
the two NLB timings AWS does not publish.

For each layout (switch, retarget) and NLB profile (documented, optimistic) it runs
``cachebridge sandbox up``, N drills of each kind (planned: TestFailover; unplanned:
kill-primary), then ``sandbox down``, and prints one table: ``write_unavailable_s`` and
``detect_s`` median/max, READONLY errors and lost acknowledged writes. Then, under the
documented profile, a sweep: listener propagation 2, 10, 75 s and registration delay 30,
120, 180 s, planned failovers, each layout, so the dependence of each layout on the two
numbers AWS does not publish shows; and the deregistration lag 0, 10, 120 s, which AWS
describes only as "a few minutes".

After each drill the benchmark runs one controller pass (the sandbox's ``/tick``, as the
schedule would a little later), so a node the switch layout cut rejoins its slot and the
next drill, which waits for every node's slot to be healthy, does not wait for the
minute-long schedule.

Every NLB delay runs scaled by ``--time-scale`` (default 0.05: 120 s of registration take
6 s) so the whole run takes minutes; the sandbox's own promotion and the controller are not
scaled. Figures are as run (wall seconds); the sweep also prints each figure with the NLB's
own share put back to AWS time (see ``aws_estimate``).

Targets checked (printed, not asserted), switch layout under the documented profile:
planned ``write_unavailable_s`` median <= promotion + listener propagation (as run) + 2 s;
unplanned <= the emulated detection time + the same; 0 lost acknowledged writes on planned.

    python benchmarks/failover.py [--drills 5] [--sweep-drills 3] [--time-scale 0.05] [--json] [--save results.json]
    python benchmarks/failover.py --table results.json     # print saved results again
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

LAYOUTS = ("switch", "retarget")
PROFILES = ("documented", "optimistic")
KINDS = {"planned": [], "unplanned": ["--kill-primary"]}
PROPAGATION_SWEEP = (2.0, 10.0, 75.0)
REGISTRATION_SWEEP = (30.0, 120.0, 180.0)
# Not asked of AWS's documentation but decisive for the switch layout: how long a
# deregistered target still takes new connections ("can take a few minutes").
LAG_SWEEP = (0.0, 10.0, 120.0)
DETECT_DELAY_S = 1.0
FAILOVER_AFTER_S = 3.0


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cachebridge.cli", *args], capture_output=True, text=True, timeout=timeout)


def layouts_available() -> set[str]:
    """The switch layout needs ``sandbox up --layout``; older trees have only retarget."""
    help_text = cli("sandbox", "up", "--help").stdout
    return set(LAYOUTS) if "--layout" in help_text else {"retarget"}


def run_sandbox(layout: str, profile: str, flags: list[str], kinds: dict[str, list[str]], drills: int,
                duration: float, scale: float, label: str) -> dict[str, list[dict[str, Any]]]:
    state_dir = Path(tempfile.mkdtemp(prefix="cachebridge-bench-"))
    layout_flags = ["--layout", layout] if layout != "retarget" or "switch" in layouts_available() else []
    up = cli("sandbox", "up", "--state-dir", str(state_dir), "--nlb-profile", profile, "--time-scale", str(scale),
             "--detect-delay", str(DETECT_DELAY_S), "--json", *layout_flags, *flags)
    if up.returncode != 0:
        raise SystemExit(f"sandbox up failed ({label}): {up.stderr[-3000:]}")
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    try:
        for i in range(drills):
            for kind, kind_flags in kinds.items():
                drill = cli("drill", "--state-dir", str(state_dir), "--duration", str(duration), "--failover-after",
                            str(FAILOVER_AFTER_S), "--rate", "50", "--json", *kind_flags)
                if drill.returncode != 0:
                    raise SystemExit(f"drill failed ({label} / {kind}): {drill.stderr[-3000:]}")
                summary = json.loads(drill.stdout)
                results[kind].append(summary)
                tick(state_dir)
                print(f"  {label} / {kind} #{i + 1}: write unavailable {summary['write_unavailable_s']} s, detect "
                      f"{summary['detect_s']} s, READONLY {summary['readonly_errors']}, lost "
                      f"{summary['lost_acknowledged_writes']}, waited {summary['waited_for_healthy_s']} s",
                      file=sys.stderr)
    finally:
        cli("sandbox", "down", "--state-dir", str(state_dir))
    return results


def tick(state_dir: Path) -> None:
    from cachebridge.sandbox.control import control, read_state

    state = read_state(state_dir)
    if state is not None:
        control(state, "/tick", method="POST")


def _median_max(values: list[float | None]) -> dict[str, float] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"median": round(statistics.median(present), 3), "max": round(max(present), 3)}


def stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "drills": len(runs),
        "write_unavailable_s": _median_max([r["write_unavailable_s"] for r in runs]),
        "detect_s": _median_max([r["detect_s"] for r in runs]),
        "promoted_s": _median_max([r.get("promoted_s") for r in runs]),
        "new_primary_reached_s": _median_max([r.get("new_primary_reached_s") for r in runs]),
        "measured_listener_propagation_s": _median_max([r.get("measured_listener_propagation_s") for r in runs]),
        "measured_registration_s": _median_max([r.get("measured_registration_s") for r in runs]),
        "readonly_errors": sum(r["readonly_errors"] for r in runs),
        "lost_acknowledged_writes": sum(r["lost_acknowledged_writes"] for r in runs),
        "nlb_profile": runs[0].get("nlb_profile") if runs else None,
    }


def aws_estimate(stat: dict[str, Any], scale: float) -> float | None:
    """``write_unavailable_s`` as it would be at AWS speed: until the controller acted
    (``detect_s``: promotion, DNS, notification, the controller) ran in real time; what
    follows waits on the NLB (registration, deregistration lag, listener propagation), which
    ran scaled, so it is scaled back. Client reconnects are scaled back too, so the figure
    errs high by a fraction of a second divided by the scale."""
    unavailable, detect = stat.get("write_unavailable_s"), stat.get("detect_s")
    if not unavailable or not detect:
        return None
    nlb_share = max(0.0, unavailable["median"] - detect["median"])
    return round(detect["median"] + nlb_share / scale, 1)


def duration_for(scale: float, registration: float = 180.0, lag: float = 120.0) -> float:
    # Long enough for the slowest modelled step after the failover, and then some load.
    return round(FAILOVER_AFTER_S + max(registration, lag) * scale + 12.0, 1)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    available = layouts_available()
    scale = args.time_scale
    report: dict[str, Any] = {"time_scale": scale, "detect_delay_s": DETECT_DELAY_S, "table": {}, "sweep": {}}
    layouts = [name for name in args.layouts.split(",") if name]
    for layout in layouts if args.drills else ():
        for profile in PROFILES:
            key = f"{layout}/{profile}"
            if layout not in available:
                report["table"][key] = None
                continue
            runs = run_sandbox(layout, profile, [], KINDS, args.drills, duration_for(scale), scale, key)
            report["table"][key] = {kind: stats(r) for kind, r in runs.items()}
    if args.sweep_drills:
        for layout in layouts:
            sweeps = {"propagation": ("--listener-propagation", PROPAGATION_SWEEP),
                      "registration": ("--registration-delay", REGISTRATION_SWEEP),
                      "lag": ("--deregistration-lag", LAG_SWEEP)}
            for flag, values in (sweeps[name] for name in args.sweeps.split(",") if name):
                for value in values:
                    key = f"{layout}/{flag.lstrip('-')}={value:g}"
                    if layout not in available:
                        report["sweep"][key] = None
                        continue
                    registration = value if flag == "--registration-delay" else 120.0
                    runs = run_sandbox(layout, "documented", [flag, str(value)], {"planned": []}, args.sweep_drills,
                                       duration_for(scale, registration), scale, key)
                    report["sweep"][key] = stats(runs["planned"])
    return report


def _cell(value: dict[str, float] | None) -> str:
    return f"{value['median']:>7.2f} /{value['max']:>7.2f}" if value else f"{'-':>16}"


def print_report(report: dict[str, Any]) -> None:
    scale = report["time_scale"]
    print(f"\nFailover drills in the sandbox; NLB delays run at time scale {scale:g} (x{1 / scale:g} faster), "
          f"figures in wall seconds, median / max;\n'~AWS': the median with everything after the controller acted "
          f"put back to AWS time (errs high by ~0.3 s / scale when the NLB adds nothing)")
    print(f"\n{'layout':<9} {'profile':<11} {'kind':<10} {'drills':>6} {'write_unavailable_s':>19} {'~AWS':>7} {'detect_s':>16} "
          f"{'READONLY':>9} {'lost acked':>10}")
    for key, kinds in report["table"].items():
        layout, profile = key.split("/")
        if kinds is None:
            print(f"{layout:<9} {profile:<11} {'(not available: this tree has no switch layout in the sandbox)'}")
            continue
        for kind, st in kinds.items():
            estimate = aws_estimate(st, scale)
            print(f"{layout:<9} {profile:<11} {kind:<10} {st['drills']:>6} {_cell(st['write_unavailable_s']):>19} "
                  f"{estimate if estimate is not None else '-':>7} {_cell(st['detect_s']):>16} {st['readonly_errors']:>9} "
                  f"{st['lost_acknowledged_writes']:>10}")
    _print_targets(report)
    if report["sweep"]:
        print("\nSweep, documented profile (other parameters at their defaults), planned failovers. 'AWS s' is the "
              "parameter as AWS would take it;\n'as run' is scaled; '~AWS' is the write_unavailable_s median with "
              "everything after the controller acted (detect_s) put back to AWS time.")
        print(f"\n{'layout':<9} {'parameter':<22} {'AWS s':>6} {'as run':>7} {'write_unavailable_s':>19} {'~AWS':>7} "
              f"{'measured propagation':>21} {'measured registration':>22}")
        for key, st in report["sweep"].items():
            layout, param = key.split("/")
            name, value = param.split("=")
            if st is None:
                print(f"{layout:<9} {name:<22} {value:>6} {'(not available)':>27}")
                continue
            estimate = aws_estimate(st, scale)
            print(f"{layout:<9} {name:<22} {float(value):>6g} {float(value) * scale:>7.2f} {_cell(st['write_unavailable_s']):>19} "
                  f"{estimate if estimate is not None else '-':>7} {_cell(st['measured_listener_propagation_s']):>21} "
                  f"{_cell(st['measured_registration_s']):>22}")


def _print_targets(report: dict[str, Any]) -> None:
    switch = report["table"].get("switch/documented")
    if not switch:
        print("\ntargets (switch layout, documented profile): not checked, no switch layout in this run")
        return
    profile = switch["planned"]["nlb_profile"] or {}
    propagation = profile.get("listener_propagation_s", 10.0) * profile.get("time_scale", report["time_scale"])
    print("\ntargets (switch layout, documented profile):")
    planned, unplanned = switch["planned"], switch["unplanned"]
    promotion = (planned["promoted_s"] or {"median": 0.0})["median"]
    checks = [
        ("planned write_unavailable_s median", planned["write_unavailable_s"], promotion + propagation + 2.0,
         f"promotion {promotion:.2f} + propagation {propagation:.2f} + 2"),
        ("unplanned write_unavailable_s median", unplanned["write_unavailable_s"], report["detect_delay_s"] + propagation + 2.0,
         f"detection {report['detect_delay_s']:.2f} + propagation {propagation:.2f} + 2"),
    ]
    for name, value, limit, how in checks:
        got = value["median"] if value else None
        verdict = "met" if got is not None and got <= limit else "NOT met"
        print(f"  {name:<38} {got if got is not None else '-':>8} <= {limit:6.2f} ({how}): {verdict}")
    lost = planned["lost_acknowledged_writes"]
    print(f"  {'planned lost acknowledged writes':<38} {lost:>8} == 0: {'met' if lost == 0 else 'NOT met'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drills", type=int, default=5, help="drills of each kind per layout and profile")
    parser.add_argument("--sweep-drills", type=int, default=3, help="planned drills per sweep point (0: no sweep)")
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--sweeps", default="propagation,registration,lag", help="which sweeps to run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--save", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--table", type=Path, nargs="+", help="print the table of saved results (merged in order)")
    args = parser.parse_args()
    if args.table:
        report: dict[str, Any] = {"table": {}, "sweep": {}}
        for path in args.table:
            saved = json.loads(path.read_text())
            report["time_scale"], report["detect_delay_s"] = saved["time_scale"], saved["detect_delay_s"]
            report["table"].update({k: v for k, v in saved["table"].items() if v is not None or k not in report["table"]})
            report["sweep"].update({k: v for k, v in saved["sweep"].items() if v is not None or k not in report["sweep"]})
        print_report(report)
        return 0
    os.environ.pop("AWS_ENDPOINT_URL", None)
    report = run_all(args)
    if args.save:
        args.save.write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
