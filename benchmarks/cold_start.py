"""A new Lambda instance, as the runtime starts it: import + first pass, memory, zip size.

The function's zip (``cachebridge.deploy.package``) is built and unpacked into a temporary
directory, which stands in for ``/var/task``: read-only in Lambda, so our modules (and the
dnspython the zip ships) are compiled from source on every cold start and no
``__pycache__`` is ever written there. Each run is a fresh process started with ``-B``
(``PYTHONDONTWRITEBYTECODE``) with the unpacked zip first on ``sys.path`` and boto3/botocore
from this virtualenv (as the runtime provides them, precompiled). It times
``import cachebridge.handler`` and one handler call (a scheduled sync of 1 binding, in
sync) against a moto server and a loopback DNS server, both started here.

Beside it, in the same run and in the same way (fresh processes, interleaved): a bare
``import boto3`` and a bare ``import botocore.session``, so the ratio survives a busy
machine; and the floor: the first pass's own calls (``DescribeReplicationGroups``,
``DescribeTargetGroups``, ``DescribeTargetHealth``) and DNS query made by botocore and an
already compiled dnspython alone, with nothing of cachebridge, which is what any function
doing this job pays at least on this machine (printed as "above the floor"). The anchor (the AWS sample "hostname as target for network load balancers") was
measured at 0.227 s on this machine earlier, against the same moto and DNS servers; its
figure is printed, not re-measured.

``--precompiled`` compiles the unpacked zip first with this Python: what bytecode shipped
for the running Python would give. ``--against SRC`` also measures the zip another
checkout (its ``src`` directory) builds, its runs interleaved with this one's: a
before/after on a busy machine.

``--runtime-python PATH`` measures under the Lambda runtime's own Python too (3.13, the
template's ``Runtime``): a virtualenv for it with this environment's boto3 version (the
pinned one) is created once from PyPI under ``--cache-dir``
(``~/.cache/cachebridge/cold-start``), and its processes run, interleaved with the
others: the source-only zip, the zip ``cachebridge package --bytecode`` builds with that
interpreter (``--bytecode-variants``: ``imported`` is the default build, ``all``,
``imported-sourceless``, ``all-sourceless`` the others), and a bare ``import boto3`` under
that interpreter, which is the ratio's base for its rows.

Printed per figure, median of ``--runs`` (10): import time, first pass time, their sum;
then, from one more process of each kind that counts its AWS calls (untimed): the calls
made on the first pass and the clients built, for an in-sync first pass and for a first
pass that writes (the node's address moved within the VPC); peak RSS (``VmHWM``) of both;
the zip's size. The function's environment is the deployed one: the binding in
``CACHEBRIDGE_BINDINGS`` and the VPC's CIDR blocks in ``CACHEBRIDGE_VPC_CIDRS``. Targets are printed, not asserted.

    python benchmarks/cold_start.py [--runs 10] [--against ../other/src] [--precompiled]
        [--runtime-python /path/to/python3.13 [--bytecode-variants imported,all]] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import boto3

from cachebridge.config import Binding, Config, ElastiCacheSourceSpec, Settings
from cachebridge.deploy import package
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sandbox.redis_nodes import free_port

ANCHOR_S = 0.227  # the AWS sample's import + first pass, measured on this machine before
TARGETS = {
    "import_and_first_pass_s": 0.22,
    "peak_rss_mb": 55.0,
    "zip_kb": 400.0,
}
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}

# The function's process. ``count`` registers a call counter on the controller's botocore
# session before the pass (so its timings are not used).
COLD_SCRIPT = r"""
import io, json, sys, time
if sys.argv[1] == "profile":
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
started, cpu_started = time.perf_counter(), time.process_time()
import cachebridge.handler as h
imported, cpu_imported = time.perf_counter(), time.process_time()
calls = {}
if sys.argv[1] == "count":
    import botocore.session
    session = h.aws._sessions[None] = botocore.session.Session()
    session.register("before-call.*.*", lambda model, **_: calls.__setitem__(model.name, calls.get(model.name, 0) + 1))
sys.stdout = io.StringIO()  # the handler's log lines
result = h.handler({"action": "sync"}, None)
done, cpu_done = time.perf_counter(), time.process_time()
sys.stdout = sys.__stdout__
if sys.argv[1] == "profile":
    import pstats
    profiler.disable()
    for order in ("cumulative", "tottime"):
        pstats.Stats(profiler, stream=sys.stderr).strip_dirs().sort_stats(order).print_stats(int(sys.argv[2]))
import cachebridge, dns
print(json.dumps({
    "import_s": imported - started, "pass_s": done - imported, "total_s": done - started,
    "cpu_import_s": cpu_imported - cpu_started, "cpu_total_s": cpu_done - cpu_started,
    "statuses": [b["status"] for b in result["bindings"]], "errors": [b["error"] for b in result["bindings"] if b["error"]],
    "calls": dict(sorted(calls.items())), "clients": sorted(key[0] for key in h.aws._clients),
    "peak_rss_mb": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]) / 1024,
    "cachebridge": cachebridge.__file__, "dns": dns.__file__,
    "bytecode_written": not sys.dont_write_bytecode,
}))
"""
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cachebridge" / "cold-start"
# The same AWS and DNS work as the in-sync first pass, with the same libraries and nothing
# of cachebridge: what any function doing this job on this machine pays at least.
FLOOR_SCRIPT = r"""
import sys, time
started, cpu_started = time.perf_counter(), time.process_time()
import botocore.session, dns.resolver
session = botocore.session.Session()
elbv2, elasticache = session.create_client("elbv2"), session.create_client("elasticache")
group, target_group, nameserver, name = sys.argv[1:5]
elasticache.describe_replication_groups(ReplicationGroupId=group)
arn = elbv2.describe_target_groups(Names=[target_group])["TargetGroups"][0]["TargetGroupArn"]
elbv2.describe_target_health(TargetGroupArn=arn)
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers, resolver.port = [nameserver.split(":")[0]], int(nameserver.split(":")[1])
resolver.resolve(name, "A")
print(time.perf_counter() - started, time.process_time() - cpu_started)
"""
BARE_SCRIPT = (
    "import sys, time; t, c = time.perf_counter(), time.process_time(); __import__(sys.argv[1]); "
    "print(time.perf_counter() - t, time.process_time() - c)"
)


def start_moto() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachebridge.sandbox.aws_server", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    if not proc.stdout.readline().startswith("ready"):
        proc.kill()
        raise SystemExit("moto server did not start")
    return proc, f"http://127.0.0.1:{port}"


def build_world(endpoint: str, dns: LoopbackDnsServer) -> tuple[Config, str, str]:
    """One replication group, its primary's name in DNS, one IP target group holding it."""
    kwargs = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="bench", aws_secret_access_key="bench")
    ec2, elbv2, elasticache = (boto3.client(name, **kwargs) for name in ("ec2", "elbv2", "elasticache"))  # type: ignore[call-overload]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    elasticache.create_replication_group(ReplicationGroupId="cold", ReplicationGroupDescription="cold start", ReplicasPerNodeGroup=1)
    members = elasticache.describe_replication_groups(ReplicationGroupId="cold")["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
    primary = next(m for m in members if m["CurrentRole"] == "primary")["ReadEndpoint"]["Address"]
    dns.zone.set_a(primary, "10.0.1.10")
    for m in members:
        if m["ReadEndpoint"]["Address"] != primary:
            dns.zone.set_a(m["ReadEndpoint"]["Address"], "10.0.1.11")
    arn = elbv2.create_target_group(Name="cold-primary", Protocol="TCP", Port=6379, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": "10.0.1.10", "Port": 6379}])
    binding = Binding(name="cold-primary", source=ElastiCacheSourceSpec("cold", "primary"), target_group="cold-primary")  # type: ignore[arg-type]
    return Config((binding,), Settings(nameservers=(dns.address,), dns_timeout_s=2.0)), primary, vpc


BYTECODE_VARIANTS = {  # name: (modules, keep_sources), as ``package.BytecodeOptions`` takes them
    "imported": ("imported", True),
    "all": ("all", True),
    "imported-sourceless": ("imported", False),
    "all-sourceless": ("all", False),
}


def unpack_zip(into: Path, src: Path | None = None) -> tuple[Path, int]:
    """The function's zip, unpacked into ``into/task``: built by this checkout, or by the
    checkout whose ``src`` directory is given (with its own packaging rules)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "lambda.zip"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from cachebridge.deploy import package; package.build().write(sys.argv[1])", str(archive)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"building the zip failed: {done.stderr[-2000:]}")
    task = _extract(archive, into / "task")
    assert not any(task.rglob("__pycache__")), "the zip must not hold bytecode"
    return task, archive.stat().st_size


def _extract(archive: Path, task: Path) -> Path:
    task.mkdir()
    with zipfile.ZipFile(archive) as z:
        z.extractall(task)
    return task


def unpack_bytecode_zip(into: Path, runtime: package.RuntimePython, variant: str) -> tuple[Path, int]:
    """The zip ``cachebridge package --bytecode`` builds with the runtime's interpreter,
    unpacked into ``into/task``."""
    into.mkdir(parents=True, exist_ok=True)
    modules, keep_sources = BYTECODE_VARIANTS[variant]
    built = package.build(bytecode=package.BytecodeOptions(runtime, modules, keep_sources))  # type: ignore[arg-type]
    archive = built.write(into / "lambda.zip")
    return _extract(archive, into / "task"), built.size


def runtime_venv(python: str, cache_dir: Path) -> tuple[str, package.RuntimePython]:
    """A virtualenv of the runtime's interpreter with this environment's boto3 and botocore
    versions (the pinned ones), made once under ``cache_dir``; its python and its probe."""
    from importlib.metadata import version

    runtime = package.find_runtime_python(python)
    pins = [f"boto3=={version('boto3')}", f"botocore=={version('botocore')}"]
    venv = cache_dir / f"py{runtime.version[0]}.{runtime.version[1]}-{'-'.join(p.replace('==', '-') for p in pins)}"
    venv_python = venv / "bin" / "python"
    stamp = venv / ".cachebridge-ready"
    if not stamp.is_file():
        print(f"creating {venv} ({', '.join(pins)} from PyPI)", file=sys.stderr)
        for command in ([runtime.path, "-m", "venv", "--clear", str(venv)],
                        [str(venv_python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(command[:3])}... failed: {done.stderr[-2000:]}")
        stamp.write_text(" ".join(pins) + "\n")
    return str(venv_python), runtime


def precompile(task: Path) -> None:
    """Bytecode for every module of the unpacked zip, by this Python: what a zip built
    with the runtime's own Python version could ship."""
    import compileall

    if not compileall.compile_dir(str(task), quiet=1, workers=1):
        raise SystemExit(f"compiling {task} failed")


def run_function(task: Path, env: dict[str, str], mode: str, python: str = sys.executable, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [python, "-B", "-c", COLD_SCRIPT, mode, *extra], capture_output=True, text=True, env=env, cwd=task, timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"cold start run failed: {done.stderr[-3000:]}")
    if mode == "profile":
        print(done.stderr, file=sys.stderr)
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    for module in ("cachebridge", "dns"):
        if not out[module].startswith(str(task)):
            raise SystemExit(f"{module} was imported from {out[module]}, not from the unpacked zip")
    if out["bytecode_written"] or (env.get("CACHEBRIDGE_BENCH_BYTECODE") != "1" and any(task.rglob("__pycache__"))):
        raise SystemExit("bytecode was written into the unpacked zip: not a Lambda-like start")
    return out


def run_floor(env: dict[str, str], args: list[str], python: str = sys.executable) -> tuple[float, float]:
    """Wall and CPU seconds of the same first pass's work done by botocore and dnspython
    alone, in a fresh process (dnspython from the unpacked zip, as the function has it)."""
    done = subprocess.run([python, "-B", "-c", FLOOR_SCRIPT, *args], capture_output=True, text=True, env=env, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"the floor's run failed: {done.stderr[-2000:]}")
    wall, cpu = done.stdout.split()
    return float(wall), float(cpu)


def run_bare(module: str, python: str = sys.executable) -> tuple[float, float]:
    """Wall and CPU seconds of a bare import in a fresh process."""
    done = subprocess.run([python, "-B", "-c", BARE_SCRIPT, module], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"import {module} failed: {done.stderr[-2000:]}")
    wall, cpu = done.stdout.split()
    return float(wall), float(cpu)


def measure(
    runs: int,
    against: Path | None = None,
    precompiled: bool = False,
    runtime_python: str | None = None,
    cache_dir: Path | None = None,
    variants: tuple[str, ...] = ("imported",),
    profile: int = 0,
) -> dict[str, Any]:
    """Figures for this checkout's zip and, with ``against`` (another checkout's ``src``),
    for that one's; with ``runtime_python``, for the source-only and bytecode zips under the
    runtime's interpreter; every kind's runs interleaved with the others and the bare imports."""
    venv_python, runtime = runtime_venv(runtime_python, cache_dir or DEFAULT_CACHE) if runtime_python else (None, None)
    moto, endpoint = start_moto()
    dns = LoopbackDnsServer().start()
    versions: dict[str, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="cachebridge-cold-") as tmp:
            config, primary, vpc = build_world(endpoint, dns)
            base_env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CACHEBRIDGE_", "PYTHON"))},
                **CREDENTIALS,
                "AWS_ENDPOINT_URL": endpoint,
                "CACHEBRIDGE_BINDINGS": config.bindings_json(),
                "PYTHONDONTWRITEBYTECODE": "1",
                # As the deployed template sets it (deploy reads the VPC's CIDR blocks); a
                # checkout that does not know the variable ignores it.
                "CACHEBRIDGE_VPC_CIDRS": f"{vpc}=10.0.0.0/16",
            }
            kinds: list[tuple[str, Path, int, str, bool]] = []  # label, task, zip size, python, bytecode in task
            sources = {"this": None, **({"against": against} if against is not None else {})}
            for label, src in sources.items():
                task, size = unpack_zip(Path(tmp) / label, src)
                if precompiled:
                    precompile(task)
                kinds.append((label, task, size, sys.executable, precompiled))
            if venv_python is not None and runtime is not None:
                task, size = unpack_zip(Path(tmp) / "runtime-source-only")
                kinds.append(("runtime-source-only", task, size, venv_python, False))
                for variant in variants:
                    task, size = unpack_bytecode_zip(Path(tmp) / f"runtime-{variant}", runtime, variant)
                    kinds.append((f"runtime-bytecode-{variant}", task, size, venv_python, True))
            for label, task, size, python, bytecode in kinds:
                env = {**base_env, "LAMBDA_TASK_ROOT": str(task), "PYTHONPATH": str(task)}
                if bytecode:
                    env["CACHEBRIDGE_BENCH_BYTECODE"] = "1"
                first = run_function(task, env, "count", python)  # also warms the OS file cache
                if first["statuses"] != ["in_sync"]:
                    raise SystemExit(f"{label}: the first pass should be in sync: {first['statuses']} {first['errors']}")
                versions[label] = {"task": task, "env": env, "python": python, "zip_size": size, "first": first, "runs": []}

            boto3_runs: list[tuple[float, float]] = []
            botocore_runs: list[tuple[float, float]] = []
            runtime_boto3_runs: list[tuple[float, float]] = []
            floor_args = ["cold", "cold-primary", dns.address, primary]
            # The floor's dnspython is compiled already: this environment's own, and under the
            # runtime's Python the bytecode zip's.
            floor_envs = {"this": (base_env, sys.executable)}
            runtime_bytecode = next((label for label in versions if label.startswith("runtime-bytecode-")), None)
            if runtime_bytecode is not None:
                floor_envs["runtime"] = (versions[runtime_bytecode]["env"], versions[runtime_bytecode]["python"])
            floor_runs: dict[str, list[tuple[float, float]]] = {label: [] for label in floor_envs}
            for _ in range(runs):  # interleaved, so a busy moment hits every kind alike
                for v in versions.values():
                    v["runs"].append(run_function(v["task"], v["env"], "time", v["python"]))
                boto3_runs.append(run_bare("boto3"))
                botocore_runs.append(run_bare("botocore.session"))
                if venv_python is not None:
                    runtime_boto3_runs.append(run_bare("boto3", venv_python))
                for label, (env, python) in floor_envs.items():
                    floor_runs[label].append(run_floor(env, floor_args, python))

            # A first pass that writes: the primary's node moved to another address inside
            # the VPC, so the pass registers the new one and deregisters the old.
            for label, v in versions.items():
                v["writes"] = []
                for address in ("10.0.1.20", "10.0.1.10"):
                    dns.zone.set_a(primary, address)
                    v["writes"].append(run_function(v["task"], v["env"], "count", v["python"]))
                for w in v["writes"]:
                    if w["statuses"] != ["changed"]:
                        raise SystemExit(f"{label}: the writing pass should change the group: {w['statuses']} {w['errors']}")
            if profile:  # one more in-sync start of the last kind (the runtime's bytecode zip when measured), under cProfile
                dns.zone.set_a(primary, "10.0.1.10")
                label, v = list(versions.items())[-1]
                print(f"cProfile of {label}: import + first in-sync pass", file=sys.stderr)
                run_function(v["task"], v["env"], "count", v["python"])  # the writing runs above left the group to re-sync
                run_function(v["task"], v["env"], "profile", v["python"], str(profile))
    finally:
        dns.stop()
        moto.terminate()
        moto.wait(10)

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    bare_boto3 = median([wall for wall, _ in boto3_runs])
    out: dict[str, Any] = {
        "runs": runs,
        "precompiled": precompiled,
        "python": ".".join(map(str, sys.version_info[:3])),
        "bare_import_boto3_s": bare_boto3,
        "bare_import_botocore_session_s": median([wall for wall, _ in botocore_runs]),
        # CPU seconds: less sensitive than wall time to other work on the machine.
        "cpu_bare_import_boto3_s": median([cpu for _, cpu in boto3_runs]),
        "cpu_bare_import_botocore_session_s": median([cpu for _, cpu in botocore_runs]),
        "floor_s": median([wall for wall, _ in floor_runs["this"]]),
        "cpu_floor_s": median([cpu for _, cpu in floor_runs["this"]]),
        "anchor_s": ANCHOR_S,
        "targets": TARGETS,
    }
    if runtime is not None:
        out["runtime"] = {
            "python": runtime.path,
            "version": ".".join(map(str, runtime.version)),
            "bare_import_boto3_s": median([wall for wall, _ in runtime_boto3_runs]),
            "cpu_bare_import_boto3_s": median([cpu for _, cpu in runtime_boto3_runs]),
            **({"floor_s": median([wall for wall, _ in floor_runs["runtime"]]),
                "cpu_floor_s": median([cpu for _, cpu in floor_runs["runtime"]])} if "runtime" in floor_runs else {}),
        }
    for label, v in versions.items():
        base = out["runtime"]["bare_import_boto3_s"] if label.startswith("runtime-") else bare_boto3
        floor = out["runtime"].get("floor_s", 0.0) if label.startswith("runtime-") else out["floor_s"]
        total = median([r["total_s"] for r in v["runs"]])
        out[label] = {
            **({"src": str(against)} if label == "against" else {}),
            "import_s": median([r["import_s"] for r in v["runs"]]),
            "first_pass_s": median([r["pass_s"] for r in v["runs"]]),
            "import_and_first_pass_s": total,
            "ratio_to_boto3": round(total / base, 2),
            **({"above_floor_s": round(total - floor, 3)} if floor else {}),
            "cpu_import_s": median([r["cpu_import_s"] for r in v["runs"]]),
            "cpu_import_and_first_pass_s": median([r["cpu_total_s"] for r in v["runs"]]),
            "in_sync": {
                "calls": v["first"]["calls"],
                "clients": v["first"]["clients"],
                "peak_rss_mb": round(statistics.median([r["peak_rss_mb"] for r in v["runs"]]), 1),
            },
            "writing": {
                "calls": v["writes"][0]["calls"],
                "clients": v["writes"][0]["clients"],
                "peak_rss_mb": round(max(w["peak_rss_mb"] for w in v["writes"]), 1),
            },
            "zip_kb": round(v["zip_size"] / 1024, 1),
        }
    out["load"] = os.getloadavg()
    return out


def _print(label: str, r: dict[str, Any]) -> None:
    def calls(c: dict[str, int]) -> str:
        return ", ".join(f"{k}={v}" for k, v in c.items()) or "none"

    print(f"{label}:")
    print(f"  import cachebridge.handler           {r['import_s']:.3f} s   (from the unpacked zip)")
    print(f"  first in-sync pass                   {r['first_pass_s']:.3f} s")
    print(f"  import + first pass                  {r['import_and_first_pass_s']:.3f} s   ratio to bare boto3 {r['ratio_to_boto3']}"
          f"   target <= {TARGETS['import_and_first_pass_s']} s")
    if "above_floor_s" in r:
        print(f"  above the floor                      {r['above_floor_s']:.3f} s")
    print(f"  CPU: import {r['cpu_import_s']:.3f} s, import + first pass {r['cpu_import_and_first_pass_s']:.3f} s")
    print(f"  first in-sync pass: calls {calls(r['in_sync']['calls'])}; clients {', '.join(r['in_sync']['clients'])}; "
          f"peak RSS {r['in_sync']['peak_rss_mb']} MB")
    print(f"  first pass that writes: calls {calls(r['writing']['calls'])}; clients {', '.join(r['writing']['clients'])}; "
          f"peak RSS {r['writing']['peak_rss_mb']} MB (target <= {TARGETS['peak_rss_mb']} MB)")
    print(f"  Lambda zip: {r['zip_kb']} KB (target <= {TARGETS['zip_kb']} KB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="fresh processes of each kind (median)")
    parser.add_argument("--against", type=Path, metavar="SRC",
                        help="also measure the zip another checkout builds (its src directory), interleaved with this one")
    parser.add_argument("--precompiled", action="store_true",
                        help="compile the unpacked zip first with this Python (what shipping bytecode for it would give)")
    parser.add_argument("--runtime-python", metavar="PATH",
                        help="also measure under the Lambda runtime's Python (3.13): source-only zip, bytecode zip, bare boto3")
    parser.add_argument("--bytecode-variants", default="imported", metavar="V[,V]",
                        help=f"with --runtime-python, the bytecode zips to measure: {', '.join(BYTECODE_VARIANTS)} (default: imported)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"where the runtime's virtualenv is kept (default: {DEFAULT_CACHE})")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also run the last kind once under cProfile and print its top N functions to stderr")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if not 1 <= args.runs <= 100:
        parser.error("--runs must be between 1 and 100")
    if args.against is not None and not (args.against / "cachebridge" / "handler.py").is_file():
        parser.error(f"--against {args.against}: no cachebridge/handler.py there (give a checkout's src directory)")
    variants = tuple(v.strip() for v in args.bytecode_variants.split(",") if v.strip())
    if unknown := [v for v in variants if v not in BYTECODE_VARIANTS]:
        parser.error(f"--bytecode-variants: unknown {', '.join(unknown)} (choose from {', '.join(BYTECODE_VARIANTS)})")
    if args.runtime_python:
        try:
            package.find_runtime_python(args.runtime_python)
        except package.ConfigError as exc:
            parser.error(str(exc))
    r = measure(args.runs, args.against.resolve() if args.against else None, args.precompiled,
                args.runtime_python, args.cache_dir, variants, args.profile)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"new Lambda instance, 1 binding, median of {r['runs']} fresh processes of each kind, interleaved "
          f"(load average at the end {r['load'][0]:.2f}):")
    print(f"  Python {r['python']} (this environment):")
    if r["precompiled"]:
        print("  (--precompiled: the unpacked zip holds bytecode from this Python; the default zip holds none)")
    print(f"  bare import boto3                    {r['bare_import_boto3_s']:.3f} s")
    print(f"  bare import botocore.session         {r['bare_import_botocore_session_s']:.3f} s")
    print(f"  CPU: bare boto3 {r['cpu_bare_import_boto3_s']:.3f} s, bare botocore.session {r['cpu_bare_import_botocore_session_s']:.3f} s")
    print(f"  floor: the same calls and DNS query  {r['floor_s']:.3f} s   (CPU {r['cpu_floor_s']:.3f} s; botocore + dnspython alone)")
    print(f"  anchor (AWS sample, earlier run)     {r['anchor_s']:.3f} s")
    _print("this checkout", r["this"])
    if "against" in r:
        _print(f"against {r['against']['src']}", r["against"])
    if "runtime" in r:
        rt = r["runtime"]
        print(f"Python {rt['version']} (the Lambda runtime's; {rt['python']}, a virtualenv with the pinned boto3):")
        print(f"  bare import boto3                    {rt['bare_import_boto3_s']:.3f} s   (CPU {rt['cpu_bare_import_boto3_s']:.3f} s)")
        if "floor_s" in rt:
            print(f"  floor: the same calls and DNS query  {rt['floor_s']:.3f} s   (CPU {rt['cpu_floor_s']:.3f} s; botocore + dnspython alone)")
        for label in [k for k in r if k.startswith("runtime-")]:
            _print(label.removeprefix("runtime-").replace("-", " ", 1), r[label])
    return 0


if __name__ == "__main__":
    sys.exit(main())
