"""API calls, wall time and peak memory of one sync pass, for 1 and 100 bindings.

Runs against moto server (its own process, started here on loopback) and a loopback DNS
server. Bindings are ElastiCache sources, half of them ``role=primary`` and half
``role=replicas`` of the same replication groups, so a pass over 100 bindings describes
50 replication groups. Passes measured:

- cold in-sync: a fresh process's first pass (reads target group and VPC details);
- warm in-sync: the next pass, as a warm Lambda runs it (those details are cached);
- changing: every node's address moved (node replacement), so each binding registers
  one target and deregisters one.

The world mirrors a deployed stack: a DynamoDB lock table keyed as the template's
``LockTable`` (moto), and the controller configured with ``lock_table`` and
``controller_id``, so writes go through the write lease as they do in AWS.
``--no-lock-table`` measures the unlocked path instead (no table; the extra reads around
an unlocked deregister).

Targets: an in-sync warm pass makes no write call, one DescribeTargetHealth per target
group and one DescribeReplicationGroups per replication group; 100 bindings in under
3 s; peak RSS within a 128 MB Lambda.

    python benchmarks/sync_pass.py [--bindings 1 100] [--json]

``--latency`` measures what a real API's latency does to a pass: every AWS call goes
through a loopback proxy that adds ``--aws-ms`` (30) and every DNS query through one that
adds ``--dns-ms`` (5) (``latency.py``; they also count the calls). Each size runs in a
fresh process of its own, through the function's own adapters (``aws.adapters``), so its
peak RSS is the controller's alone. Then: a new instance's import + first in-sync pass
(``import cachebridge.handler`` and one handler call, no proxy), median of ``--cold-runs``
fresh processes, beside a bare ``import boto3`` timed the same way in the same run; and
the Lambda zip's size. Targets are printed, not asserted:

    python benchmarks/sync_pass.py --latency [--bindings 1 100 1000] [--max-concurrency 8] [--no-lock-table]
        [--also-concurrency 16] [--against ../other-checkout] [--json]

The changing pass's AWS calls per binding are printed after the table, and each pass's
CPU per AWS call in each process (controller, moto server, this process's proxies and
DNS server) with the TCP connections the controller opened through the proxy.
``--against CHECKOUT`` runs every size again with another checkout's moto server and
controller (``CHECKOUT/src`` first on ``PYTHONPATH``; same proxies, same machine, one run):
before and after side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import boto3

from cachebridge import aws, nlb
from cachebridge.config import Binding, Config, ElastiCacheSourceSpec, Settings
from cachebridge.nlb import TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sandbox.redis_nodes import free_port
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import sync
from cachebridge.writes import CLOCK_SKEW_S

WRITE_CALLS = {"RegisterTargets", "DeregisterTargets"}
LOCK_TABLE = "cachebridge-bench-locks"
CONTROLLER_ID = "bench-stack"
LEASE_CALLS = {"UpdateItem", "TransactWriteItems", "BatchGetItem"}


def create_lock_table(dynamodb: Any) -> str:
    """The template's ``LockTable``: keyed by ``lease_key`` (``lease.KEY_ATTRIBUTE``)."""
    from cachebridge.lease import KEY_ATTRIBUTE

    dynamodb.create_table(
        TableName=LOCK_TABLE,
        KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return LOCK_TABLE


def with_lock_table(settings: Settings, locked: bool) -> Settings:
    return settings.merged({"lock_table": LOCK_TABLE, "controller_id": CONTROLLER_ID}) if locked else settings


def trees_of(results: list[dict[str, Any]]) -> list[str]:
    return sorted({r.get("tree", "this tree") for r in results})


def per_binding(results: list[dict[str, Any]]) -> list[str]:
    """Lines: the changing pass's AWS calls per binding, lease calls apart."""
    lines = []
    for r in results:
        if r["pass"].startswith("changing") and r["bindings"]:
            lease = sum(v for k, v in r["calls"].items() if k in LEASE_CALLS)
            tree = f"{r['tree']}: " if len(trees_of(results)) > 1 else ""
            lines.append(
                f"{tree}{r['pass']}, {r['bindings']} binding(s): {r['api_calls'] / r['bindings']:.2f} AWS calls per binding "
                f"({lease / r['bindings']:.3f} of them lease calls: {lease} in all)"
            )
    return lines


class CallCounter:
    def __init__(self, *clients: Any) -> None:
        self.calls: Counter[str] = Counter()
        for client in clients:
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def take(self) -> dict[str, int]:
        out = dict(sorted(self.calls.items()))
        self.calls.clear()
        return out


def start_moto(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachebridge.sandbox.aws_server", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    assert proc.stdout is not None
    if not proc.stdout.readline().startswith("ready"):
        raise SystemExit("moto server did not start")
    return proc, f"http://127.0.0.1:{port}"


def build_world(n_bindings: int, dns: LoopbackDnsServer, clients: dict[str, Any]) -> tuple[Config, dict[str, str]]:
    """Replication groups, their node names in DNS, and one IP target group per binding."""
    vpc = clients["ec2"].create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    n_groups = max(1, n_bindings // 2)
    bindings: list[Binding] = []
    node_names: dict[str, str] = {}
    run = os.urandom(3).hex()
    for g in range(n_groups):
        rg_id = f"bench{run}-{g}"
        clients["elasticache"].create_replication_group(
            ReplicationGroupId=rg_id, ReplicationGroupDescription="bench", ReplicasPerNodeGroup=1
        )
        members = clients["elasticache"].describe_replication_groups(ReplicationGroupId=rg_id)["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
        for i, member in enumerate(members):
            ip = f"10.0.{g % 250}.{10 + i}"  # inside the VPC: the answer checks refuse others
            node_names[member["ReadEndpoint"]["Address"]] = ip
            dns.zone.set_a(member["ReadEndpoint"]["Address"], ip)
        roles = ["primary", "replicas"] if n_bindings > 1 else ["primary"]
        for role in roles:
            if len(bindings) == n_bindings:
                break
            name = f"tg-{run}-{g}-{role[0]}"
            clients["elbv2"].create_target_group(Name=name, Protocol="TCP", Port=6379, VpcId=vpc, TargetType="ip")
            bindings.append(Binding(name=name, source=ElastiCacheSourceSpec(rg_id, role), target_group=name))  # type: ignore[arg-type]
    return Config(tuple(bindings), Settings(nameservers=(dns.address,), dns_timeout_s=1.0)), node_names


def measure(config: Config, clients: dict[str, Any], counter: CallCounter, label: str) -> dict[str, Any]:
    target_groups = TargetGroups(clients["elbv2"], clients["ec2"], dynamodb=clients["dynamodb"])
    sources = Sources(DnsResolver(config.settings.nameservers, config.settings.dns_timeout_s), clients["elasticache"])
    counter.take()
    started = time.perf_counter()
    report = sync(config, target_groups=target_groups, sources=sources)
    wall = time.perf_counter() - started
    calls = counter.take()
    statuses = Counter(b.status for b in report.bindings)
    return {
        "pass": label,
        "bindings": len(config.bindings),
        "wall_s": round(wall, 3),
        "calls": calls,
        "api_calls": sum(calls.values()),
        "write_calls": sum(v for k, v in calls.items() if k in WRITE_CALLS),
        "statuses": dict(statuses),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bindings", type=int, nargs="+", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--latency", action="store_true", help="add latency per AWS call and DNS query")
    parser.add_argument("--aws-ms", type=float, default=30.0)
    parser.add_argument("--dns-ms", type=float, default=5.0)
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--cold-runs", type=int, default=10)
    parser.add_argument("--no-lock-table", action="store_true", help="no lock table: measure the unlocked write path")
    parser.add_argument("--also-concurrency", type=int, default=None, metavar="N",
                        help="--latency: after the changing pass, move every address again and run one more changing pass with max_concurrency N, in the same world")
    parser.add_argument("--against", metavar="CHECKOUT", default=None,
                        help="--latency: measure another checkout of cachebridge too, in the same run: its moto server and controller (its src first on PYTHONPATH), this checkout's proxies")
    args = parser.parse_args()
    if args.against is not None:
        args.against = checkout_root(parser, args.against)
    if args.latency:
        return latency_main(args)
    args.bindings = args.bindings or [1, 100]

    moto, endpoint = start_moto()
    dns = LoopbackDnsServer().start()
    results: list[dict[str, Any]] = []
    try:
        kwargs = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")
        setup = {name: boto3.client(name, **kwargs) for name in ("elbv2", "ec2", "elasticache", "dynamodb")}
        if not args.no_lock_table:
            create_lock_table(setup["dynamodb"])
        for n in args.bindings:
            world, node_names = build_world(n, dns, setup)
            config = Config(world.bindings, with_lock_table(world.settings, not args.no_lock_table))
            nlb.clear_caches()
            aws.clear_caches()
            clients = {name: boto3.client(name, config=aws.BOTO_CONFIG, **kwargs) for name in ("elbv2", "ec2", "elasticache", "dynamodb")}
            counter = CallCounter(*clients.values())
            measure(config, clients, counter, "initial registration")  # brings every group in sync
            nlb.clear_caches()  # as a new Lambda instance would start
            results.append(measure(config, clients, counter, "cold in-sync"))
            results.append(measure(config, clients, counter, "warm in-sync"))
            for name, ip in node_names.items():
                a, b, c, d = ip.split(".")
                dns.zone.set_a(name, f"{a}.{b}.{c}.{int(d) + 100}")
            results.append(measure(config, clients, counter, "changing"))
    finally:
        dns.stop()
        moto.terminate()
        moto.wait(10)

    if args.json:
        print(json.dumps({"results": results}, indent=2))
        return 0
    print(f"{'pass':<14} {'bindings':>8} {'wall s':>8} {'API calls':>9} {'writes':>6} {'peak RSS MB':>11}  calls")
    for r in results:
        calls = ", ".join(f"{k}={v}" for k, v in r["calls"].items())
        print(f"{r['pass']:<14} {r['bindings']:>8} {r['wall_s']:>8.3f} {r['api_calls']:>9} {r['write_calls']:>6} {r['peak_rss_mb']:>11}  {calls}")
    for line in per_binding(results):
        print(line)
    return 0


# -- --latency ---------------------------------------------------------------------------

PASSES = ("initial registration", "cold in-sync", "warm in-sync", "changing")
TARGETS = {
    "in-sync, 1,000 bindings, 30 ms per call": "<= 10 s",
    "changing, 1,000 bindings": "<= 20 s",
    "peak RSS, 1 binding": "<= 55 MB",
    "new instance: import + first in-sync pass": "<= 0.22 s (anchor 0.227 s)",
    "Lambda zip": "<= 400 KB (anchor 188 KB)",
    "in-sync AWS calls": "1 per target group + 1 per replication group, 0 writes",
}


def build_world_parallel(n_bindings: int, dns: LoopbackDnsServer, clients: dict[str, Any]) -> tuple[Config, dict[str, str]]:
    """``build_world``, its replication groups created 8 at a time (1,000 bindings are 500
    groups)."""
    from concurrent.futures import ThreadPoolExecutor

    n_groups = max(1, n_bindings // 2)
    per_group = 2 if n_bindings > 1 else 1
    vpc = clients["ec2"].create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    run = os.urandom(3).hex()

    def group(g: int) -> tuple[list[Binding], dict[str, str]]:
        rg_id = f"bench{run}-{g}"
        clients["elasticache"].create_replication_group(ReplicationGroupId=rg_id, ReplicationGroupDescription="bench", ReplicasPerNodeGroup=1)
        members = clients["elasticache"].describe_replication_groups(ReplicationGroupId=rg_id)["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
        names: dict[str, str] = {}
        for i, member in enumerate(members):
            ip = f"10.0.{g % 250}.{10 + i + 20 * (g // 250)}"  # inside the VPC, unique up to 500 groups
            names[member["ReadEndpoint"]["Address"]] = ip
            dns.zone.set_a(member["ReadEndpoint"]["Address"], ip)
        out = []
        for role in ("primary", "replicas")[:per_group]:
            name = f"tg-{run}-{g}-{role[0]}"
            out.append(Binding(name=name, source=ElastiCacheSourceSpec(rg_id, role), target_group=name))  # type: ignore[arg-type]
        return out, names

    bindings: list[Binding] = []
    node_names: dict[str, str] = {}
    with ThreadPoolExecutor(8) as pool:
        for made, names in pool.map(group, range(n_groups)):
            bindings += made
            node_names.update(names)
    for binding in bindings[:n_bindings]:  # one at a time: moto creates target groups unlocked
        clients["elbv2"].create_target_group(Name=binding.target_group, Protocol="TCP", Port=6379, VpcId=vpc, TargetType="ip")
    return Config(tuple(bindings[:n_bindings]), Settings()), node_names


# One size, in a fresh process that imports only what the function imports: the passes of
# PASSES through the function's own adapters; the parent moves the addresses and reads the
# proxies' counters in between ("start" / "go" / "end" lines).
WORKER_SCRIPT = """
import json, resource, sys, time
from collections import Counter
from cachebridge import aws, nlb
from cachebridge.config import Config
from cachebridge.sync import sync

def peak_rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]) / 1024

def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

config = Config.from_file(sys.argv[1])
target_groups, sources = aws.adapters(config.settings)
for label in json.loads(sys.argv[2]):
    print("start " + label, flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(1)
    if label == "cold in-sync":
        nlb.clear_caches()  # as a new instance would start
    run = config
    if label.startswith("changing, max_concurrency "):
        run = Config(config.bindings, config.settings.merged({"max_concurrency": int(label.rsplit(" ", 1)[1])}))
    cpu0, started = cpu_s(), time.perf_counter()
    report = sync(run, target_groups=target_groups, sources=sources)
    wall, cpu = time.perf_counter() - started, cpu_s() - cpu0
    print("end " + json.dumps({
        "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "statuses": dict(Counter(b.status for b in report.bindings)),
        "errors": [b.error for b in report.bindings if b.error][:3], "peak_rss_mb": round(peak_rss_mb(), 1),
    }), flush=True)
"""


def peak_rss_mb() -> float:
    """This process's peak resident set: ``VmHWM``, which starts afresh at exec.
    (``ru_maxrss`` carries over the peak of the process that forked this one on Linux.)"""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


COLD_SCRIPT = """
import io, json, resource, sys, time
started = time.perf_counter()
import cachebridge.handler as h
imported = time.perf_counter()
sys.stdout = io.StringIO()
result = h.handler({"action": "sync"}, None)
done = time.perf_counter()
sys.stdout = sys.__stdout__
print(json.dumps({"import_s": imported - started, "total_s": done - started, "ok": result["ok"],
                  "statuses": [b["status"] for b in result["bindings"]],
                  "peak_rss_mb": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]) / 1024,
                  "clients": sorted(key[0] for key in h.aws._clients)}))
"""
BOTO3_SCRIPT = "import time; t = time.perf_counter(); import boto3; print(time.perf_counter() - t)"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def checkout_root(parser: argparse.ArgumentParser, path: str) -> str:
    """The checkout ``--against`` names: its root, or its ``src`` given by mistake (whose
    ``src/src`` would put nothing on the path and measure this checkout twice)."""
    root = os.path.abspath(path)
    if not os.path.isdir(os.path.join(root, "src", "cachebridge")) and os.path.isdir(os.path.join(root, "cachebridge")):
        root = os.path.dirname(root)
    if not os.path.isdir(os.path.join(root, "src", "cachebridge")):
        parser.error(f"--against {path}: no src/cachebridge there; give the root of a cachebridge checkout")
    return root


def tree_env(tree: str | None) -> dict[str, str]:
    """The environment of a process that runs ``tree``'s code: this checkout's (None), or
    another checkout's ``src`` first on ``PYTHONPATH`` (``--against``)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.join(os.path.abspath(tree), "src"), env.get("PYTHONPATH")) if p)
    return env


def run_tree(args: argparse.Namespace, sizes: list[int], tree: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every size's passes with ``tree``'s moto server and controller (``tree_env``), behind
    this checkout's proxies; and, for this checkout, the cold-start runs. Each pass's CPU is
    read per process: the controller's (the worker's own rusage), moto server's
    (``/proc/<pid>/stat``), and this process's (the latency proxies and the DNS server)."""
    import tempfile

    from latency import DnsLatencyProxy, LatencyProxy

    tree_label = "this tree" if tree is None else tree
    moto, endpoint = start_moto(tree_env(tree))
    dns = LoopbackDnsServer().start()
    host, port = endpoint.removeprefix("http://").split(":")
    aws_proxy = LatencyProxy((host, int(port)), args.aws_ms / 1000).start()
    dns_proxy = DnsLatencyProxy(("127.0.0.1", dns.port), args.dns_ms / 1000).start()
    credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    results: list[dict[str, Any]] = []
    cold: dict[str, Any] = {}
    one_binding: Config | None = None
    try:
        kwargs = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")
        setup = {name: boto3.client(name, **kwargs) for name in ("elbv2", "ec2", "elasticache", "dynamodb")}
        if not args.no_lock_table:
            create_lock_table(setup["dynamodb"])
        for n in sizes:
            world, node_names = build_world_parallel(n, dns, setup)
            # Latency alone, nothing throttled, so unpaced (throttled_pass.py measures pacing).
            settings = with_lock_table(
                Settings(nameservers=(dns_proxy.address,), dns_timeout_s=2.0, elb_describe_rate=0), not args.no_lock_table
            )
            if args.max_concurrency:
                settings = settings.merged({"max_concurrency": args.max_concurrency})
            config = Config(world.bindings, settings)
            if n == 1:
                one_binding = Config(world.bindings, Settings(nameservers=(dns.address,), dns_timeout_s=2.0))
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(config.to_mapping(), f)
            env = {**{k: v for k, v in tree_env(tree).items() if not k.startswith("AWS_")}, **credentials, "AWS_ENDPOINT_URL": aws_proxy.url}
            passes = PASSES + ((f"changing, max_concurrency {args.also_concurrency}",) if args.also_concurrency else ())
            proc = subprocess.Popen(
                [sys.executable, "-c", WORKER_SCRIPT, f.name, json.dumps(passes)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
            )
            assert proc.stdin is not None and proc.stdout is not None
            last_write_end = time.time()
            try:
                moved = 0
                for label in passes:
                    line = proc.stdout.readline()
                    if not line.startswith("start"):
                        raise SystemExit(f"worker for {n} bindings stopped: {line!r}")
                    if label.startswith("changing"):
                        # A deployed stack runs a minute apart: its changing pass finds the
                        # last pass's leases released well before it reads (CLOCK_SKEW_S).
                        time.sleep(max(0.0, last_write_end + CLOCK_SKEW_S + 1.0 - time.time()))
                        moved += 100
                        for name, ip in node_names.items():
                            a, b, c, d = ip.split(".")
                            dns.zone.set_a(name, f"{a}.{b}.{c}.{int(d) + moved}")
                    aws_proxy.take()
                    dns_proxy.take()
                    aws_proxy.take_connections()
                    moto_cpu0, here_cpu0 = process_cpu_s(moto.pid), self_cpu_s()
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
                    line = proc.stdout.readline()
                    if not line.startswith("end "):
                        raise SystemExit(f"worker for {n} bindings stopped: {line!r}")
                    measured = json.loads(line[4:])
                    moto_cpu, here_cpu = process_cpu_s(moto.pid) - moto_cpu0, self_cpu_s() - here_cpu0
                    if label == "initial registration" or label.startswith("changing"):
                        last_write_end = time.time()
                    calls = aws_proxy.take()
                    results.append({
                        "tree": tree_label, "pass": label, "bindings": n, **measured, "calls": calls, "api_calls": sum(calls.values()),
                        "write_calls": sum(v for k, v in calls.items() if k in WRITE_CALLS), "dns_queries": dns_proxy.take(),
                        "moto_cpu_s": round(moto_cpu, 3), "proxies_cpu_s": round(here_cpu, 3),
                        "connections": aws_proxy.take_connections(),
                    })
            finally:
                proc.wait(60)
                os.unlink(f.name)

        if tree is None and one_binding is not None and args.cold_runs > 0:
            env = {
                **{k: v for k, v in tree_env(tree).items() if not k.startswith(("AWS_", "CACHEBRIDGE_"))}, **credentials,
                "AWS_ENDPOINT_URL": endpoint, "CACHEBRIDGE_BINDINGS": one_binding.bindings_json(),
            }
            runs = []
            for _ in range(args.cold_runs):
                out = subprocess.run([sys.executable, "-c", COLD_SCRIPT], capture_output=True, text=True, env=env, timeout=120)
                if out.returncode != 0:
                    raise SystemExit(f"cold start run failed: {out.stderr[-2000:]}")
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            boto3_runs = [
                float(subprocess.run([sys.executable, "-c", BOTO3_SCRIPT], capture_output=True, text=True, timeout=60).stdout)
                for _ in range(args.cold_runs)
            ]
            cold = {
                "runs": len(runs),
                "import_and_first_pass_s": round(_median([r["total_s"] for r in runs]), 3),
                "import_s": round(_median([r["import_s"] for r in runs]), 3),
                "bare_import_boto3_s": round(_median(boto3_runs), 3),
                "statuses": sorted({s for r in runs for s in r["statuses"]}),
                "peak_rss_mb": round(_median([r["peak_rss_mb"] for r in runs]), 1),
                "clients": runs[-1]["clients"],
            }
            cold["ratio_to_boto3"] = round(cold["import_and_first_pass_s"] / cold["bare_import_boto3_s"], 2)
    finally:
        aws_proxy.stop()
        dns_proxy.stop()
        dns.stop()
        moto.terminate()
        moto.wait(10)
    return results, cold


def latency_main(args: argparse.Namespace) -> int:
    from cachebridge.deploy import package

    sizes = args.bindings or [1, 100, 1000]
    trees: list[str | None] = [None] + ([args.against] if args.against else [])
    results: list[dict[str, Any]] = []
    cold: dict[str, Any] = {}
    for tree in trees:
        tree_results, tree_cold = run_tree(args, sizes, tree)
        results += tree_results
        if tree is None:
            cold = tree_cold
    zip_kb = round(package.build().size / 1024, 1)

    concurrency = args.max_concurrency or Settings().max_concurrency
    if args.json:
        print(json.dumps({"aws_ms": args.aws_ms, "dns_ms": args.dns_ms, "max_concurrency": concurrency, "lock_table": not args.no_lock_table, "results": results,
                          "cold_start": cold, "zip_kb": zip_kb, "targets": TARGETS}, indent=2))
        return 0
    print(
        f"{args.aws_ms:g} ms per AWS call, {args.dns_ms:g} ms per DNS query, max_concurrency {concurrency}, "
        + ("no lock table (unlocked write path)" if args.no_lock_table else f"lock table {LOCK_TABLE} (the write lease, as deployed)")
    )
    print(f"{'pass':<30} {'bindings':>8} {'wall s':>8} {'AWS calls':>9} {'writes':>6} {'DNS':>6} {'peak RSS MB':>11}  calls")
    tree = None
    for r in results:
        if r["tree"] != tree and len(set(x["tree"] for x in results)) > 1:
            tree = r["tree"]
            print(f"-- {tree}")
        calls = ", ".join(f"{k}={v}" for k, v in r["calls"].items())
        print(f"{r['pass']:<30} {r['bindings']:>8} {r['wall_s']:>8.3f} {r['api_calls']:>9} {r['write_calls']:>6} {r['dns_queries']:>6} {r['peak_rss_mb']:>11}  {calls}")
        if r["errors"]:
            print(f"{'':<30} errors: {r['errors']}")
    print("CPU per AWS call, ms (controller / moto server / proxies + DNS server), and TCP connections the controller opened:")
    for r in results:
        n = max(r["api_calls"], 1)
        print(
            f"  {r['tree'] + ': ' if len(trees_of(results)) > 1 else ''}{r['pass']}, {r['bindings']}: "
            f"{1000 * r['cpu_s'] / n:.2f} / {1000 * r['moto_cpu_s'] / n:.2f} / {1000 * r['proxies_cpu_s'] / n:.2f}; "
            f"{r['connections']} connections for {r['api_calls']} calls"
        )
    for line in per_binding(results):
        print(line)
    if cold:
        print(
            f"new instance, import + first in-sync pass (median of {cold['runs']}): {cold['import_and_first_pass_s']} s "
            f"(import {cold['import_s']} s); bare `import boto3`: {cold['bare_import_boto3_s']} s; "
            f"ratio {cold['ratio_to_boto3']}; statuses {cold['statuses']}; peak RSS {cold['peak_rss_mb']} MB; "
            f"clients built: {', '.join(cold['clients'])}"
        )
    print(f"Lambda zip: {zip_kb} KB")
    print("targets (printed, not asserted):")
    for what, target in TARGETS.items():
        print(f"  {what}: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
