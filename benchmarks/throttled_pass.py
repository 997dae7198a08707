"""What one sync pass does under AWS's documented API throttling, for 100 and 1,000 bindings.

Every AWS call goes through ``latency.LatencyProxy`` with ``--aws-ms`` (30) of latency and,
with ``--throttle documented`` (the default), the token buckets AWS documents (``latency.py``
says which, with their sources: ELB API v2 ``Describe*`` 40 tokens, 10 a second; nothing
else is documented, so nothing else is throttled). DNS queries get ``--dns-ms`` (5). The
world is ``sync_pass.build_world_parallel``'s: half the bindings ``role=primary``, half
``role=replicas``, one IP target group each.

Each size runs in a fresh process of its own, the controller's adapters and retry policy
(``aws.BOTO_CONFIG``: botocore standard mode, 2 attempts) as deployed, each pass with the
deadline the handler gives it under the template's ``--timeout-s`` (60) function timeout.
Passes, the bucket full before each (a 1-minute schedule leaves it 4 s to refill, from
empty):

- setup: every target group gets its target, unthrottled (not measured);
- in-sync (new instance): the first pass of a new function instance;
- in-sync (warm): the next scheduled run;
- changing: every node's address moved (node replacement);
- changing, next run (x ``--next-runs``): the scheduled runs after it, until every
  binding has followed or the runs are used up.

After every pass every target group is read (straight from moto, not through the proxy)
and checked: none may be empty (the safety rule: nothing emptied because something
failed); the figures say how many hold the address the source gives now and how many
still hold only the one before.

The controller paces its ELB ``Describe*`` calls (``cachebridge.pacing``) with
``elb_describe_rate`` / ``elb_describe_burst``: by default as deployed (10 a second, 40),
``--elb-describe-rate 0`` for the controller unpaced. The worker's bucket starts full
before each pass, as the proxy's; a call that would wait past the deadline is not made.

    python benchmarks/throttled_pass.py [--bindings 100 1000] [--throttle documented|none]
        [--elb-describe-rate 10] [--elb-describe-burst 40] [--max-concurrency 8]
        [--next-runs 2] [--others-per-s 0] [--json]

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import boto3

from latency import PROFILES, DnsLatencyProxy, LatencyProxy, Throttle
from sync_pass import WRITE_CALLS, build_world_parallel, create_lock_table, start_moto, with_lock_table

from cachebridge.config import DEFAULT_ELB_DESCRIBE_BURST, DEFAULT_ELB_DESCRIBE_RATE, Config, Settings
from cachebridge.sandbox.dns import LoopbackDnsServer

# The worker: one size, the function's own adapters; the parent sends one line per pass
# ("<label>\t<json options>") and reads one "end <json>" line back.
WORKER_SCRIPT = r"""
import json, re, sys, threading, time
from collections import Counter
from cachebridge import aws, nlb, pacing
from cachebridge.config import Config
from cachebridge.handler import DEADLINE_MARGIN_S
from cachebridge.sync import sync

config = Config.from_file(sys.argv[1])
timeout_s = float(sys.argv[2])
target_groups, sources = aws.adapters(config.settings)

# The controller's own pacing (``pacing``, sized by the config's elb_describe_rate /
# elb_describe_burst). Waits are summed over threads.
waited, waited_lock = [0.0], threading.Lock()
_take = pacing.TokenBucket.take
def _counted_take(self, deadline=None):
    wait = _take(self, deadline)
    with waited_lock:
        waited[0] += wait or 0.0
    return wait
pacing.TokenBucket.take = _counted_take
rate, burst = config.settings.elb_describe_rate, config.settings.elb_describe_burst

# How each ELB call ended, as botocore's standard mode left it (its retry quota is the
# client's, so it carries from one pass of a warm instance to the next).
outcomes = Counter()
def after_call(http_response, parsed, **_):
    meta = parsed.get("ResponseMetadata", {})
    ok = 200 <= http_response.status_code < 300
    if meta.get("RetryAttempts"):
        outcomes["ok after a retry" if ok else "failed after a retry"] += 1
    elif ok:
        outcomes["ok"] += 1
    else:
        outcomes["failed, retry quota spent" if meta.get("RetryQuotaReached") else "failed, not retried"] += 1
aws.client("elbv2", config.settings.region, None, controller=True).meta.events.register(
    "after-call.elastic-load-balancing-v2", after_call)
_ids = re.compile(r"arn:aws:\S+|tg-[0-9a-f]+-\d+-[pr]")

print("ready", flush=True)
for line in sys.stdin:
    label, options = line.rstrip("\n").split("\t")
    options = json.loads(options)
    if options.get("new_instance"):
        nlb.clear_caches()
    # The setup pass is not paced; the others start with a full bucket, as the proxy's (a
    # 1-minute schedule leaves AWS's bucket 4 s to refill from empty, and this one too).
    pacing.configure(rate if options["throttled"] else 0, burst)
    pacing.reset()
    waited[0] = 0.0
    outcomes.clear()
    started = time.monotonic()
    deadline = started + timeout_s - DEADLINE_MARGIN_S if timeout_s > 0 and options["throttled"] else None
    with pacing.pass_deadline(deadline):  # as the handler does
        report = sync(config, target_groups=target_groups, sources=sources, deadline=deadline)
    wall = time.monotonic() - started
    errors = Counter(f"{b.status}: " + _ids.sub("<tg>", b.error or "")[:200] for b in report.bindings if b.status in ("error", "skipped"))
    print("end " + json.dumps({
        "wall_s": round(wall, 3),
        "statuses": dict(Counter(b.status for b in report.bindings)),
        "changed": sorted(b.name for b in report.bindings if b.status == "changed"),
        "verified": sorted(b.name for b in report.bindings if b.status in ("in_sync", "changed")),
        "errors": errors.most_common(3),
        "paced_wait_s": round(waited[0], 1) if rate and options["throttled"] else None,
        "elb_calls": dict(outcomes),
        "peak_rss_mb": round(int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]) / 1024, 1),
    }), flush=True)
"""


def check_target_groups(elbv2: Any, config: Config, now: dict[str, str], before: dict[str, str]) -> dict[str, int]:
    """Every binding's target group, read straight from moto: how many are empty (the
    safety rule says none), how many hold the address the source gives now, how many only
    the one it gave before. ``now`` / ``before``: target group -> address."""
    out = Counter()
    for binding in config.bindings:
        described = elbv2.describe_target_health(TargetGroupArn=_arn(elbv2, binding.target_group))["TargetHealthDescriptions"]
        live = {d["Target"]["Id"] for d in described if d.get("TargetHealth", {}).get("State") != "draining"}
        if not live:
            out["empty"] += 1
        elif now[binding.target_group] in live:
            out["desired"] += 1
        elif before.get(binding.target_group) in live:
            out["previous only"] += 1
        else:
            out["other"] += 1
    return dict(out)


_ARNS: dict[str, str] = {}


def _arn(elbv2: Any, name: str) -> str:
    if name not in _ARNS:
        _ARNS[name] = elbv2.describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"]
    return _ARNS[name]


def registered(elbv2: Any, config: Config) -> dict[str, str]:
    """Target group -> the one address it holds (after the setup pass: what the source gives)."""
    out: dict[str, str] = {}
    for binding in config.bindings:
        described = elbv2.describe_target_health(TargetGroupArn=_arn(elbv2, binding.target_group))["TargetHealthDescriptions"]
        ids = sorted({d["Target"]["Id"] for d in described})
        if len(ids) != 1:
            raise SystemExit(f"{binding.target_group} holds {ids} after the setup pass, not one target")
        out[binding.target_group] = ids[0]
    return out


def run_size(n: int, args: argparse.Namespace, endpoint: str, dns: LoopbackDnsServer, setup: dict[str, Any]) -> list[dict[str, Any]]:
    host, port = endpoint.removeprefix("http://").split(":")
    proxy = LatencyProxy((host, int(port)), args.aws_ms / 1000).start()
    dns_proxy = DnsLatencyProxy(("127.0.0.1", dns.port), args.dns_ms / 1000).start()
    world, node_names = build_world_parallel(n, dns, setup)
    settings = Settings(nameservers=(dns_proxy.address,), dns_timeout_s=2.0,
                        elb_describe_rate=args.elb_describe_rate, elb_describe_burst=args.elb_describe_burst)
    if args.max_concurrency:
        settings = settings.merged({"max_concurrency": args.max_concurrency})
    config = Config(world.bindings, with_lock_table(settings, not args.no_lock_table))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config.to_mapping(), f)
    credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **credentials, "AWS_ENDPOINT_URL": proxy.url}
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, f.name, str(args.timeout_s)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    results: list[dict[str, Any]] = []
    try:
        if not proc.stdout.readline().startswith("ready"):
            raise SystemExit(f"worker for {n} bindings did not start")

        def one_pass(label: str, *, throttled: bool, new_instance: bool = False) -> dict[str, Any]:
            profile = PROFILES[args.throttle] if throttled else PROFILES["none"]
            proxy.throttle = Throttle(profile, others_per_s=args.others_per_s, code=args.code)  # full bucket
            proxy.take()
            dns_proxy.take()
            proc.stdin.write(f"{label}\t{json.dumps({'new_instance': new_instance, 'throttled': throttled})}\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line.startswith("end "):
                raise SystemExit(f"worker for {n} bindings stopped: {line!r}")
            measured = json.loads(line[4:])
            calls = proxy.take()
            throttled_calls = proxy.take_throttled()
            return {
                "pass": label, "bindings": n, **measured, "calls": calls, "api_calls": sum(calls.values()),
                "write_calls": sum(v for k, v in calls.items() if k in WRITE_CALLS),
                "throttled": throttled_calls, "throttled_calls": sum(throttled_calls.values()),
                "dns_queries": dns_proxy.take(),
            }

        setup_pass = one_pass("setup", throttled=False)
        if set(setup_pass["statuses"]) - {"in_sync", "changed"}:
            raise SystemExit(f"setup pass failed: {setup_pass['statuses']} {setup_pass['errors']}")
        before = registered(setup["elbv2"], config)
        # A new instance, then scheduled runs until every binding was verified at least once
        # (the sweep), at most --sweep-runs passes.
        verified: set[str] = set()
        for i in range(max(2, args.sweep_runs)):
            label = "in-sync (new instance)" if i == 0 else "in-sync (warm)" if i == 1 else f"in-sync (warm {i})"
            r = one_pass(label, throttled=True, new_instance=i == 0)
            r["target_groups"] = check_target_groups(setup["elbv2"], config, before, {})
            verified.update(r.pop("verified"))
            r["verified_so_far"] = len(verified)
            results.append(r)
            if len(verified) == n and i >= 1:
                break
        now = dict(before)
        for k in args.failovers:
            now = failover_scenario(k, n, now, config, setup, one_pass, results, args)
        if args.replace_all:
            for name, ip in node_names.items():
                dns.zone.set_a(name, _moved(ip))
            before, now = now, {tg: _moved(ip) for tg, ip in now.items()}
            followed: set[str] = set()
            for i in range(1 + args.next_runs):
                r = one_pass("changing" if i == 0 else f"changing, next run {i}", throttled=True)
                r["target_groups"] = check_target_groups(setup["elbv2"], config, now, before)
                followed.update(r.pop("changed"))
                r["followed_so_far"] = len(followed)
                results.append(r)
                if r["target_groups"].get("desired", 0) == n:
                    break
        for r in results:
            r.pop("changed", None)
            r.pop("verified", None)
    finally:
        proc.stdin.close()
        proc.wait(120)
        os.unlink(f.name)
        proxy.stop()
        dns_proxy.stop()
    return results


def failover_scenario(k: int, n: int, held: dict[str, str], config: Config, setup: dict[str, Any],
                      one_pass: Any, results: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, str]:
    """Fail over ``k`` replication groups (TestFailover, straight to moto: the replica is
    promoted, so the group's primary and replicas bindings swap addresses), spread evenly
    over the configuration, then run scheduled passes (each a minute after the last, the
    bucket full) until every binding of those groups holds its new address, at most
    ``--failover-runs`` passes. Records in which pass each group was followed."""
    groups: dict[str, list[Any]] = {}
    for binding in config.bindings:
        groups.setdefault(binding.source.replication_group_id, []).append(binding)  # type: ignore[union-attr]
    ids = sorted(groups, key=lambda rg: int(rg.rsplit("-", 1)[1]))
    chosen = [ids[(i * len(ids)) // k] for i in range(min(k, len(ids)))]
    now = dict(held)
    for rg_id in chosen:
        setup["elasticache"].test_failover(ReplicationGroupId=rg_id, NodeGroupId="0001")
        tgs = [b.target_group for b in groups[rg_id]]
        if len(tgs) == 2:  # primary and replicas swap addresses
            now[tgs[0]], now[tgs[1]] = held[tgs[1]], held[tgs[0]]
    pending = {rg_id: [b.target_group for b in groups[rg_id]] for rg_id in chosen}
    followed_in: dict[str, int] = {}
    elapsed = 0.0
    for i in range(args.failover_runs):
        label = f"failover of {k}" + ("" if i == 0 else f", next run {i}")
        r = one_pass(label, throttled=True, new_instance=args.failover_new_instance and i == 0)
        r.pop("verified", None)
        r["target_groups"] = check_target_groups(setup["elbv2"], config, now, held)
        r["failover"] = k
        for rg_id, tgs in list(pending.items()):
            if all(_holds(setup["elbv2"], tg, now[tg], held[tg]) for tg in tgs):
                followed_in[rg_id] = i + 1
                del pending[rg_id]
        # Passes a minute apart: followed by the end of pass p is at most (p - 1) x 60 s + its wall.
        r["followed_groups"] = f"{len(followed_in)} of {len(chosen)}"
        r["followed_by_s"] = round(elapsed + r["wall_s"], 1)
        elapsed += 60.0
        results.append(r)
        if not pending:
            break
    passes = Counter(followed_in.values())
    results[-1]["failover_summary"] = {
        "groups": len(chosen), "bindings": sum(len(groups[g]) for g in chosen),
        "followed_in_pass": {str(p): passes[p] for p in sorted(passes)}, "not_followed": len(pending),
    }
    return now


def _holds(elbv2: Any, tg: str, want: str, old: str) -> bool:
    described = elbv2.describe_target_health(TargetGroupArn=_arn(elbv2, tg))["TargetHealthDescriptions"]
    live = {d["Target"]["Id"] for d in described if d.get("TargetHealth", {}).get("State") != "draining"}
    return want in live and (old == want or old not in live)


def _moved(ip: str) -> str:
    a, b, c, d = ip.split(".")
    return f"{a}.{b}.{c}.{int(d) + 100}"


def render(header: dict[str, Any], results: list[dict[str, Any]]) -> None:
    buckets = ", ".join(f"{k}: {v['capacity']} tokens, {v['refill_per_s']:g}/s" for k, v in header["buckets"].items()) or "none"
    print(f"throttle {header['throttle']} ({buckets}), others {header['others_per_s']:g}/s, paced {header['paced']}; "
          f"{header['aws_ms']:g} ms per AWS call, {header['dns_ms']:g} ms per DNS query; max_concurrency {header['max_concurrency']}; "
          f"deadline from a {header['timeout_s']:g} s timeout; load {header['load'][0]:.2f}")
    print(f"{'pass':<24} {'bindings':>8} {'wall s':>7} {'calls':>6} {'thrtl':>6} {'writes':>6}  statuses / target groups after")
    for r in results:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
        tgs = ", ".join(f"{k} {v}" for k, v in sorted(r["target_groups"].items()))
        print(f"{r['pass']:<24} {r['bindings']:>8} {r['wall_s']:>7.2f} {r['api_calls']:>6} {r['throttled_calls']:>6} {r['write_calls']:>6}  {statuses} | TGs: {tgs}")
        detail = [f"calls {r['calls']}", f"throttled {r['throttled']}", f"ELB calls ended {r['elb_calls']}", f"peak RSS {r['peak_rss_mb']} MB"]
        if "followed_so_far" in r:
            detail.append(f"followed so far {r['followed_so_far']}")
        if "verified_so_far" in r:
            detail.append(f"verified at least once so far {r['verified_so_far']}")
        if "followed_groups" in r:
            detail.append(f"groups failed over and followed {r['followed_groups']}, by {r['followed_by_s']} s after the failover at most")
        if "failover_summary" in r:
            detail.append(f"failover summary {r['failover_summary']}")
        if r.get("paced_wait_s") is not None:
            detail.append(f"paced wait {r['paced_wait_s']} s (summed over workers)")
        print(f"{'':<24} {'; '.join(detail)}")
        for error, count in r["errors"]:
            print(f"{'':<24} x{count} {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bindings", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--throttle", choices=sorted(PROFILES), default="documented",
                        help="which AWS throttling to model (default: documented, see latency.py)")
    parser.add_argument("--others-per-s", type=float, default=0.0,
                        help="what the account's other callers draw from each bucket's refill (default 0)")
    parser.add_argument("--code", default="ThrottlingException", help="error code of a throttled answer (the ELB guide's)")
    parser.add_argument("--elb-describe-rate", type=float, default=DEFAULT_ELB_DESCRIBE_RATE,
                        help=f"the controller's elb_describe_rate (default {DEFAULT_ELB_DESCRIBE_RATE:g}, as deployed; 0: unpaced)")
    parser.add_argument("--elb-describe-burst", type=int, default=DEFAULT_ELB_DESCRIBE_BURST,
                        help=f"the controller's elb_describe_burst (default {DEFAULT_ELB_DESCRIBE_BURST})")
    parser.add_argument("--aws-ms", type=float, default=30.0)
    parser.add_argument("--dns-ms", type=float, default=5.0)
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--timeout-s", type=float, default=60.0, help="the function timeout the pass's deadline comes from (0: none)")
    parser.add_argument("--next-runs", type=int, default=2, help="scheduled runs after the changing pass (default 2)")
    parser.add_argument("--sweep-runs", type=int, default=4,
                        help="in-sync passes (a new instance, then warm) until every binding was verified once (default 4)")
    parser.add_argument("--failovers", type=int, nargs="*", default=[], metavar="K",
                        help="fail over K replication groups (each K in turn, e.g. 1 10 100) and count the passes until followed")
    parser.add_argument("--failover-runs", type=int, default=6, help="passes at most per failover (default 6)")
    parser.add_argument("--failover-new-instance", action="store_true",
                        help="each failover's first pass runs on a new instance (nothing remembered)")
    parser.add_argument("--no-replace-all", dest="replace_all", action="store_false",
                        help="skip the node replacement of every group (the 'changing' passes)")
    parser.add_argument("--no-lock-table", action="store_true", help="no lock table: the unlocked write path (more target group reads)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--show", metavar="FILE", help="print the table of a run saved with --json, and run nothing")
    args = parser.parse_args()
    if args.show:
        with open(args.show) as f:
            saved = json.load(f)
        render(saved, saved["results"])
        return 0

    moto, endpoint = start_moto()
    dns = LoopbackDnsServer().start()
    results: list[dict[str, Any]] = []
    try:
        kwargs = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")
        setup = {name: boto3.client(name, **kwargs) for name in ("elbv2", "ec2", "elasticache", "dynamodb")}
        if not args.no_lock_table:
            create_lock_table(setup["dynamodb"])  # as a deployed stack has
        for n in args.bindings:
            results += run_size(n, args, endpoint, dns, setup)
    finally:
        dns.stop()
        moto.terminate()
        moto.wait(10)

    concurrency = args.max_concurrency or Settings().max_concurrency
    header = {
        "throttle": args.throttle, "buckets": {k: vars(v) for k, v in PROFILES[args.throttle].items()},
        "others_per_s": args.others_per_s, "paced": f"{args.elb_describe_rate:g}/s, burst {args.elb_describe_burst}" if args.elb_describe_rate else "no", "aws_ms": args.aws_ms, "dns_ms": args.dns_ms,
        "max_concurrency": concurrency, "timeout_s": args.timeout_s, "load": os.getloadavg(),
    }
    if args.json:
        print(json.dumps({**header, "results": results}, indent=2))
        return 0
    render(header, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
