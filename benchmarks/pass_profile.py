"""Where the CPU of a pass goes: the controller's side, moto's, the proxies'.

At 1,000 bindings and 30 ms per AWS call the pass is bound by CPU, not by latency: the
controller, moto server and the latency proxy share the machine's cores. This script runs
the same world as ``sync_pass.py --latency`` (replication groups, their node names in a
loopback DNS zone, one IP target group per binding, every call through ``latency.py``'s
proxies) and, for one warm in-sync pass (or, with ``--changing``, one pass in which every
binding's node moved, with a lock table as deployed), prints:

- wall time, and CPU seconds of each process: the controller (the function's own
  adapters, in a process of its own), moto server, and this process (latency proxies and
  DNS server);
- moto's service time: time inside moto's WSGI application per operation (a middleware
  in the server process times each request from its first byte read to its last byte
  written), so "moto is slow" and "we are slow" can be told apart;
- the controller's own profile: ``--profiler cprofile`` (default; every worker thread
  profiled, so the figures include the profiler's own overhead) or ``py-spy`` (sampling,
  ``pip install py-spy``) with ``--out`` for its flame graph.

    python benchmarks/pass_profile.py [--bindings 1000] [--max-concurrency 8 16] [--profiler none|cprofile|py-spy] [--top 25]
        [--changing]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3

from cachebridge.config import Config, Settings
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sandbox.redis_nodes import free_port

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latency import DnsLatencyProxy, LatencyProxy  # noqa: E402
from sync_pass import build_world_parallel, create_lock_table, with_lock_table  # noqa: E402

from cachebridge.writes import CLOCK_SKEW_S  # noqa: E402

TIMING_PATH = "/__cachebridge_timing__"

# moto server (with cachebridge's extensions) whose WSGI app is wrapped to time each
# request; GET TIMING_PATH answers the totals so far (and the process's CPU) and resets.
SERVER_SCRIPT = """
import io, json, resource, sys, threading, time
from cachebridge.sandbox.aws_server import AwsServer

server = AwsServer("127.0.0.1", int(sys.argv[1]))
app = server.app
lock = threading.Lock()
totals = {}

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

def timed(environ, start_response):
    if environ.get("PATH_INFO") == TIMING_PATH:
        with lock:
            body = json.dumps({"operations": dict(totals), "cpu_s": cpu()}).encode()
            totals.clear()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    started = time.perf_counter()
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(data)
    # Query-protocol services name the operation in the body; JSON ones (DynamoDB) in
    # the X-Amz-Target header ("DynamoDB_20120810.TransactWriteItems").
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    action = target.rpartition(".")[2] or "?"
    for part in data.split(b"&"):
        if part.startswith(b"Action="):
            action = part[7:].decode()
    out = b"".join(app(environ, start_response))
    with lock:
        count, seconds = totals.get(action, (0, 0.0))
        totals[action] = (count + 1, seconds + time.perf_counter() - started)
    return [out]

TIMING_PATH = sys.argv[2]
server.app = timed
print(f"ready {server.endpoint_url}", flush=True)
server.serve_forever()
"""

# The controller: the function's own adapters, in a process of its own. Passes run on
# "go"; the one named by argv[3] is profiled.
WORKER_SCRIPT = """
import cProfile, io, json, pstats, resource, sys, threading, time
from cachebridge import aws, nlb
from cachebridge.config import Config
from cachebridge.sync import sync

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

config = Config.from_file(sys.argv[1])
profiler = sys.argv[3]
target_groups, sources = aws.adapters(config.settings)
for label in json.loads(sys.argv[2]):
    print("start " + label, flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(1)
    profiles = []
    profiled = label == sys.argv[5] and profiler == "cprofile"
    if profiled:
        def bootstrap(frame, event, arg):  # the first event of each new thread
            p = cProfile.Profile()
            profiles.append(p)
            p.enable()
        threading.setprofile(bootstrap)
        main = cProfile.Profile()
        profiles.append(main)
        main.enable()
    cpu0, started = cpu(), time.perf_counter()
    report = sync(config, target_groups=target_groups, sources=sources)
    wall, used = time.perf_counter() - started, cpu() - cpu0
    text = ""
    if profiled:
        main.disable()
        threading.setprofile(None)
        stats = pstats.Stats(main)
        for p in profiles[1:]:
            stats.add(p)
        out = io.StringIO()
        stats.stream = out
        stats.sort_stats("tottime").print_stats(int(sys.argv[4]))
        stats.sort_stats("cumulative").print_stats("cachebridge", int(sys.argv[4]))
        text = out.getvalue()
    print("end " + json.dumps({"wall_s": round(wall, 3), "cpu_s": round(used, 3), "threads_profiled": len(profiles),
                               "statuses": sorted({b.status for b in report.bindings}), "profile": text}), flush=True)
"""


def cpu_self() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def moto_timing(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(endpoint + TIMING_PATH, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _run_worker(args: argparse.Namespace, endpoint: str, config: Config, passes: list[str], env: dict[str, str],
                aws_proxy: LatencyProxy, dns_proxy: DnsLatencyProxy, before: dict[str, Callable[[], None]] | None = None) -> dict[str, Any]:
    """The passes of ``passes`` in a fresh controller process; the figures of each. The last
    pass is profiled; ``before[label]()`` runs before the pass ``label`` starts."""
    before = before or {}
    results: dict[str, Any] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config.to_mapping(), f)
    command = [sys.executable, "-c", WORKER_SCRIPT, f.name, json.dumps(passes), args.profiler, str(args.top), passes[-1]]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    spy: subprocess.Popen[bytes] | None = None
    try:
        for label in passes:
            line = proc.stdout.readline()
            if not line.startswith("start"):
                raise SystemExit(f"worker stopped: {line!r}")
            if label in before:
                before[label]()
            if label == passes[-1] and args.profiler == "py-spy":
                exe = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
                if not os.path.exists(exe):
                    raise SystemExit("py-spy is not installed (pip install py-spy)")
                out_format = "raw" if args.out.endswith(".txt") else "flamegraph"
                spy = subprocess.Popen([exe, "record", "--pid", str(proc.pid), "--rate", "250", "--threads", "--gil", "--output", args.out, "--format", out_format],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(1.0)  # attached before the pass starts
            moto_cpu0 = moto_timing(endpoint)["cpu_s"]
            aws_proxy.take()
            dns_proxy.take()
            here0 = cpu_self()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line.startswith("end "):
                raise SystemExit(f"worker stopped: {line!r}")
            here = cpu_self() - here0
            served = moto_timing(endpoint)
            results[label] = {
                **json.loads(line[4:]), "harness_cpu_s": round(here, 3), "moto": served,
                "moto_cpu_s": round(served["cpu_s"] - moto_cpu0, 3),
                "calls": aws_proxy.take(), "dns_queries": dns_proxy.take(),
            }
            if spy is not None:
                spy.send_signal(2)
                _, err = spy.communicate(timeout=60)
                results[label]["py_spy"] = err.decode(errors="replace")[-500:]
                spy = None
    finally:
        proc.wait(60)
        os.unlink(f.name)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bindings", type=int, default=1000)
    parser.add_argument("--max-concurrency", type=int, nargs="+", default=[Settings().max_concurrency],
                        help="one or more limits, each measured in a fresh controller process on the same world")
    parser.add_argument("--aws-ms", type=float, default=30.0)
    parser.add_argument("--dns-ms", type=float, default=5.0)
    parser.add_argument("--profiler", choices=("cprofile", "py-spy", "none"), default="cprofile")
    parser.add_argument("--out", default="pass-profile.svg", help="py-spy output: a flame graph (.svg) or collapsed stacks (.txt)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--changing", action="store_true",
                        help="profile a changing pass instead (every node moved; lock table as deployed) of a warm in-sync one")
    args = parser.parse_args()

    port = free_port()
    moto = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(port), TIMING_PATH], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert moto.stdout is not None
    if not moto.stdout.readline().startswith("ready"):
        raise SystemExit("moto server did not start")
    endpoint = f"http://127.0.0.1:{port}"
    dns = LoopbackDnsServer().start()
    aws_proxy = LatencyProxy(("127.0.0.1", port), args.aws_ms / 1000).start()
    dns_proxy = DnsLatencyProxy(("127.0.0.1", dns.port), args.dns_ms / 1000).start()
    measured: list[tuple[int, dict[str, Any]]] = []
    try:
        setup = {
            name: boto3.client(name, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")
            for name in ("elbv2", "ec2", "elasticache", "dynamodb")
        }
        if args.changing:
            create_lock_table(setup["dynamodb"])
        world, node_names = build_world_parallel(args.bindings, dns, setup)
        moved = [0]

        def move() -> None:
            # After the last writes' leases are released, as a schedule a minute apart finds them.
            time.sleep(CLOCK_SKEW_S + 1.0)
            moved[0] += 100
            for name, ip in node_names.items():
                a, b, c, d = ip.split(".")
                dns.zone.set_a(name, f"{a}.{b}.{c}.{int(d) + moved[0]}")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": aws_proxy.url,
        }
        for i, limit in enumerate(args.max_concurrency):
            # Nothing throttled here, so unpaced (throttled_pass.py measures pacing).
            settings = Settings(nameservers=(dns_proxy.address,), dns_timeout_s=2.0, elb_describe_rate=0).merged({"max_concurrency": limit})
            settings = with_lock_table(settings, args.changing)
            # The first process registers every binding; later ones warm their caches first.
            passes = ["initial registration" if i == 0 else "cold in-sync", "changing" if args.changing else "warm in-sync"]
            results = _run_worker(args, endpoint, Config(world.bindings, settings), passes, env, aws_proxy, dns_proxy, {"changing": move})
            measured.append((limit, results[passes[-1]]))
    finally:
        aws_proxy.stop()
        dns_proxy.stop()
        dns.stop()
        moto.terminate()
        moto.wait(10)

    for limit, r in measured:
        ops = r["moto"]["operations"]
        served_s = sum(seconds for _, seconds in ops.values())
        served_n = sum(count for count, _ in ops.values())
        print(f"{'changing' if args.changing else 'warm in-sync'}, {args.bindings} bindings, {args.aws_ms:g} ms per AWS call, {args.dns_ms:g} ms per DNS query, "
              f"max_concurrency {limit}, profiler {args.profiler}")
        print(f"  wall {r['wall_s']} s; statuses {r['statuses']}; AWS calls {r['calls']}; DNS queries {r['dns_queries']}")
        print(f"  CPU: controller {r['cpu_s']} s; moto server {r['moto_cpu_s']} s; proxies + DNS server {r['harness_cpu_s']} s")
        print(f"  moto service time: {served_s:.2f} s for {served_n} requests ({1000 * served_s / max(served_n, 1):.1f} ms a request)")
        for op, (count, seconds) in sorted(ops.items(), key=lambda kv: -kv[1][1]):
            print(f"    {op:<32} {count:>6} requests {seconds:8.2f} s  {1000 * seconds / count:6.1f} ms each")
        print(f"  controller CPU per AWS call: {1000 * r['cpu_s'] / max(sum(r['calls'].values()), 1):.1f} ms (profiler overhead included when profiled)")
        if r.get("profile"):
            print(r["profile"])
        if r.get("py_spy"):
            print(f"py-spy: {r['py_spy'].strip()} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
