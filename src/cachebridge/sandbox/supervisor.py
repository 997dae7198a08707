"""The sandbox's supervisor: one process that hosts a whole local "region" on loopback.

It runs moto server (with ``moto_ext``), the NLB data-plane stand-in, a DNS server and
the cache nodes (``redis-server`` children it waits for), deploys the stack with
``cachebridge deploy``, and then hosts the deployed function: it calls the function's
handler in-process, with the function's own environment, for schedule ticks and for SNS
deliveries. A small HTTP control API on loopback serves ``sandbox status``,
``kill-primary`` and the drill's event timeline. ``state.json`` in the state directory
tells clients where everything is; SIGTERM stops everything and removes it.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..config import DEFAULT_LISTENER_SETTLE_S, DEFAULT_REJOIN_AFTER_S
from ..deploy.local import LocalFunction
from .aws_server import ACCOUNT_ID, AwsServer
from .dns import LoopbackDnsServer
from .failover import Cluster, FailoverOptions, Member
from .nlb_dataplane import DataPlane
from .nlb_profiles import DEFAULT_PROFILE, NlbProfile, resolve_profile
from .redis_nodes import RedisNode, _bindable, free_port

__all__ = ["SandboxOptions", "Supervisor", "main", "STATE_FILE", "TOKEN_FILE", "write_private"]

STATE_FILE = "state.json"
# The control API can kill the primary and run the controller: only a caller that can read
# the (owner-only) state directory may use it.
TOKEN_FILE = "control.token"
LISTENERS_READY_S = 15.0  # the data plane binds a listener within a tick of seeing it
REGION = "us-east-1"
SCHEDULE_EVENT = {
    "version": "0",
    "id": "00000000-0000-0000-0000-000000000000",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": ACCOUNT_ID,
    "region": REGION,
    "resources": [],
    "detail": {},
}


@dataclass
class SandboxOptions:
    state_dir: Path
    nodes: int = 2
    stack_name: str = "cachebridge-sandbox"
    replication_group: str = "sandbox"
    schedule_s: float | None = None  # default: the deployed rule's rate
    nlb_profile: str = DEFAULT_PROFILE
    time_scale: float = 1.0  # multiplies every delay the NLB stand-in models
    registration_delay_s: float | None = None  # default: the profile's
    deregistration_lag_s: float | None = None
    listener_propagation_s: float | None = None
    health_check_interval_s: int | None = None  # default: the template's
    healthy_threshold: int | None = None
    deregistration_delay_s: int | None = None
    event_wait_s: float | None = None
    failover: FailoverOptions = field(default_factory=FailoverOptions)
    layout: str = "switch"  # the stack's Layout: switch | retarget
    rejoin_after_s: float | None = None  # controller's rejoin_after_s; default: the function's
    listener_settle_s: float | None = None  # controller's listener_settle_s; default: the function's
    cluster_mode: bool = False  # a cluster-mode-enabled group in the cluster layout (sandbox.cluster_mode)


class FunctionHost:
    """The deployed function, run in this process (``deploy.local``) for schedule ticks and
    SNS deliveries, each invocation recorded as ``controller.start`` / ``controller.end``."""

    def __init__(self, function: LocalFunction, record: Any) -> None:
        self.function = function
        self._record = record

    def invoke(self, event: dict[str, Any], trigger: str) -> dict[str, Any]:
        started = 0.0

        def on_start() -> None:
            nonlocal started
            started = time.time()
            self._record("controller.start", trigger=trigger)

        try:
            result = self.function.invoke(event, on_start=on_start)
        except Exception as exc:
            self._record("controller.end", trigger=trigger, ok=False, started=started, error=str(exc))
            return {"ok": False, "error": str(exc)}
        self._record("controller.end", trigger=trigger, ok=True, started=started, result=_brief(result))
        return {"ok": True, "result": result}

    def invoke_async(self, event: dict[str, Any], trigger: str) -> None:
        threading.Thread(target=self.invoke, args=(event, trigger), name=f"invoke-{trigger}", daemon=True).start()


def _brief(result: Any) -> Any:
    if isinstance(result, dict) and "bindings" in result:
        return {"bindings": [
            {k: b.get(k) for k in ("name", "status", "register", "deregister", "changes", "error") if k in b}
            for b in result["bindings"]
        ]}
    return result


class Supervisor:
    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.state_dir = options.state_dir
        self.events: list[dict[str, Any]] = []
        self._events_lock = threading.Lock()
        self._stop = threading.Event()
        self.aws: AwsServer | None = None
        self.dataplane: DataPlane | None = None
        self.profile: NlbProfile | None = None
        self.dns: LoopbackDnsServer | None = None
        self.nodes: list[RedisNode] = []
        self.cluster: Cluster | None = None
        self.function: FunctionHost | None = None
        self.control: ThreadingHTTPServer | None = None
        self.control_token = secrets.token_urlsafe(32)
        self.state: dict[str, Any] = {}

    def record(self, kind: str, /, **detail: Any) -> None:
        with self._events_lock:
            self.events.append({"t": time.time(), "kind": kind, **detail})

    # -- bring-up ----------------------------------------------------------------------------

    def start(self) -> None:
        opts = self.options
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        write_private(self.state_dir / TOKEN_FILE, self.control_token)
        self.aws = AwsServer().start()
        endpoint = self.aws.endpoint_url
        os.environ.update({
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        })
        for key in [k for k in os.environ if k.startswith("AWS_PROFILE")]:
            os.environ.pop(key)
        self.profile = resolve_profile(
            opts.nlb_profile, registration_delay_s=opts.registration_delay_s, deregistration_lag_s=opts.deregistration_lag_s,
            listener_propagation_s=opts.listener_propagation_s, time_scale=opts.time_scale,
        )
        self.dataplane = DataPlane(ACCOUNT_ID, REGION, profile=self.profile).start()
        self.dns = LoopbackDnsServer().start()
        self.record("aws.ready", endpoint=endpoint)

        import boto3

        clients = {name: boto3.client(name) for name in ("ec2", "elasticache", "lambda", "events", "cloudformation")}
        port = free_port(tuple(f"127.0.0.{i + 2}" for i in range(opts.nodes)))
        vpc, subnets, cache_sg = self._network(clients["ec2"])
        if opts.cluster_mode:
            from .cluster_mode import start_cluster_mode

            start_cluster_mode(self, clients, vpc, subnets, cache_sg)
            return
        clients["elasticache"].create_replication_group(
            ReplicationGroupId=opts.replication_group,
            ReplicationGroupDescription="cachebridge sandbox",
            ReplicasPerNodeGroup=opts.nodes - 1,
            Port=port,
            SecurityGroupIds=[cache_sg],
            Engine="redis",
        )
        described = clients["elasticache"].describe_replication_groups(ReplicationGroupId=opts.replication_group)["ReplicationGroups"][0]
        node_group = described["NodeGroups"][0]
        members: list[Member] = []
        for i, m in enumerate(sorted(node_group["NodeGroupMembers"], key=lambda m: m["CurrentRole"] != "primary")):
            node = RedisNode(f"127.0.0.{i + 2}", port, self.state_dir / "nodes" / m["CacheClusterId"])
            hostname = m["ReadEndpoint"]["Address"]
            self.dns.zone.set_a(hostname, node.host)
            members.append(Member(m["CacheClusterId"], hostname, node))
        members[0].node.start()
        for m in members[1:]:
            m.node.start(replica_of=members[0].node)
        for m in members[1:]:
            m.node.wait_synced()
        self.nodes = [m.node for m in members]
        primary_endpoint = node_group["PrimaryEndpoint"]["Address"]
        self.dns.zone.set_cname(primary_endpoint, members[0].hostname)
        if node_group.get("ReaderEndpoint"):
            self.dns.zone.set_cname(node_group["ReaderEndpoint"]["Address"], members[-1].hostname)
        self.record("cluster.ready", primary=members[0].cluster_id, port=port)

        from . import moto_ext

        self.cluster = Cluster(
            opts.replication_group,
            members,
            primary_endpoint,
            set_cname=self.dns.zone.set_cname,
            set_roles=lambda new: moto_ext.failover_replication_group(ACCOUNT_ID, REGION, opts.replication_group, new),
            notify=lambda event: self.function.invoke_async(event, "sns") if self.function else None,
            record=self.record,
            options=opts.failover,
        )
        moto_ext.set_test_failover_hook(self._on_test_failover)

        listener_port = free_port()
        reader_port = free_port()
        # Node slots: the group's members plus room to grow, as deploy sizes them.
        node_port_base = free_port_range(opts.nodes + 2)
        outputs = self._deploy(vpc, subnets, cache_sg, listener_port, layout=opts.layout, reader_port=reader_port, node_port_base=node_port_base)
        function_name = outputs["FunctionName"]
        config = clients["lambda"].get_function_configuration(FunctionName=function_name)
        # The nodes listen on 127.0.0.x, outside the VPC the stack was given: declare them.
        extra = {"CACHEBRIDGE_NAMESERVERS": self.dns.address, "CACHEBRIDGE_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8"}
        # moto does not throttle, and the stand-in runs minutes as seconds at its time scale:
        # the ELB Describe* pacing (deployed: AWS's documented 10 a second) is off here.
        extra["CACHEBRIDGE_ELB_DESCRIBE_RATE"] = "0"
        if opts.event_wait_s is not None:
            extra["CACHEBRIDGE_EVENT_WAIT_S"] = str(opts.event_wait_s)
        if opts.rejoin_after_s is not None:
            extra["CACHEBRIDGE_REJOIN_AFTER_S"] = str(opts.rejoin_after_s)
        elif opts.time_scale != 1:
            # The switch layout holds a cut node out of its slot for a while that stands for
            # the listener propagation; it runs at the stand-in's time scale like the rest.
            extra["CACHEBRIDGE_REJOIN_AFTER_S"] = f"{DEFAULT_REJOIN_AFTER_S * opts.time_scale:g}"
        if opts.listener_settle_s is not None:
            extra["CACHEBRIDGE_LISTENER_SETTLE_S"] = str(opts.listener_settle_s)
        elif opts.time_scale != 1:
            # The wait before the cut stands for the listener propagation, which the stand-in
            # runs at its time scale.
            extra["CACHEBRIDGE_LISTENER_SETTLE_S"] = f"{DEFAULT_LISTENER_SETTLE_S * opts.time_scale:g}"
        self.function = FunctionHost(LocalFunction(config, extra), self.record)
        schedule_s = opts.schedule_s or self._schedule_period(clients["events"], clients["cloudformation"])
        first = self.function.invoke(SCHEDULE_EVENT, "schedule")
        if not first["ok"]:
            raise RuntimeError(f"the first controller run failed: {first['error']}")
        # Ready means a client can connect: every listener the stack made is listening.
        assert self.dataplane is not None
        not_listening = self.dataplane.wait_listening(LISTENERS_READY_S)
        if not_listening:
            raise RuntimeError(f"NLB listeners not listening after {LISTENERS_READY_S:g} s: " + "; ".join(not_listening.values()))
        threading.Thread(target=self._ticks, args=(schedule_s,), name="schedule", daemon=True).start()

        self.control = ThreadingHTTPServer(("127.0.0.1", 0), _control_handler(self))
        threading.Thread(target=self.control.serve_forever, name="control", daemon=True).start()
        self.state = {
            "status": "ready",
            "pid": os.getpid(),
            "create_time": _create_time(),
            "state_dir": str(self.state_dir),
            "aws_endpoint_url": endpoint,
            "region": REGION,
            "dns": self.dns.address,
            "control_url": f"http://127.0.0.1:{self.control.server_port}",
            "stack_name": opts.stack_name,
            "function_name": function_name,
            "replication_group": opts.replication_group,
            "primary_endpoint": primary_endpoint,
            "nlb": {"host": "127.0.0.1", "port": listener_port, "dns_name": outputs.get("LoadBalancerDnsName")},
            "layout": outputs.get("Layout", opts.layout),
            "listeners": {
                "primary": listener_port,
                "reader": int(outputs.get("ReaderPort", reader_port)),
                "nodes": [int(p) for p in outputs.get("NodePorts", "").split(",") if p],
            },
            "primary_listener_arn": outputs.get("PrimaryListenerArn"),
            "target_group_arn": outputs.get("TargetGroupArn"),
            "schedule_s": schedule_s,
            "outputs": outputs,
            "nodes": [{"cluster_id": m.cluster_id, "host": m.node.host, "port": m.node.port, "hostname": m.hostname} for m in members],
            "nlb_profile": self.profile.as_dict(),
            "failover": _jsonable(asdict(opts.failover)),
            "options": _jsonable(asdict(opts)),
        }
        self._write_state()
        self.record("sandbox.ready")

    def _network(self, ec2: Any) -> tuple[str, list[str], str]:
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
            for i, az in enumerate("ab")
        ]
        cache_sg = ec2.create_security_group(GroupName="sandbox-cache", Description="cache nodes", VpcId=vpc)["GroupId"]
        return vpc, subnets, cache_sg

    def _deploy(
        self,
        vpc: str,
        subnets: list[str],
        cache_sg: str,
        listener_port: int,
        *,
        layout: str = "switch",
        reader_port: int | None = None,
        node_port_base: int | None = None,
    ) -> dict[str, str]:
        """``cachebridge deploy`` of the sandbox's stack, through the same template as on AWS."""
        opts = self.options
        args = [
            sys.executable, "-m", "cachebridge.cli", "deploy",
            "--stack-name", opts.stack_name,
            "--replication-group", opts.replication_group,
            "--vpc", vpc,
            "--subnets", ",".join(subnets),
            "--allowed-cidr", "127.0.0.0/8",
            "--listener-port", str(listener_port),
            "--layout", layout,
            "--wire-notifications",
            "--invoke", "none",
            "--poll-interval", "0.2",
            "--yes",
            "--json",
        ]
        for flag, value in (
            ("--health-check-interval", opts.health_check_interval_s),
            ("--healthy-threshold", opts.healthy_threshold),
            ("--deregistration-delay", opts.deregistration_delay_s),
            ("--reader-port", reader_port),
            ("--node-port-base", node_port_base),
        ):
            if value is not None:
                args += [flag, str(value)]
        self.record("deploy.start")
        result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=os.environ.copy())
        write_private(self.state_dir / "deploy.log", result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"cachebridge deploy failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
        outputs = json.loads(result.stdout).get("outputs", {})
        self.record("deploy.end", outputs=outputs)
        return outputs

    def _schedule_period(self, events: Any, cloudformation: Any) -> float:
        resources = cloudformation.describe_stack_resources(StackName=self.options.stack_name)["StackResources"]
        for r in resources:
            if r["ResourceType"] == "AWS::Events::Rule":
                expression = events.describe_rule(Name=r["PhysicalResourceId"]).get("ScheduleExpression", "")
                match = re.match(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
                if match:
                    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
                    return float(int(match.group(1)) * unit)
        return 60.0

    def _ticks(self, period: float) -> None:
        while not self._stop.wait(period):
            if self.function is not None:
                self.function.invoke(SCHEDULE_EVENT, "schedule")

    def _on_test_failover(self, replication_group_id: str, node_group_id: str | None) -> None:
        if self.cluster is None or replication_group_id != self.cluster.replication_group_id:
            raise LookupError(replication_group_id)
        self.cluster.start_failover("planned")

    def _write_state(self) -> None:
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        write_private(tmp, json.dumps(self.state, indent=2))
        tmp.replace(path)

    # -- shutdown ----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        if self.control is not None:
            self.control.shutdown()
            self.control.server_close()
        if self.cluster is not None:
            self.cluster.join(timeout=15)
        for node in self.nodes:
            node.stop()
        if self.dataplane is not None:
            self.dataplane.stop()
        if self.dns is not None:
            self.dns.stop()
        if self.aws is not None:
            self.aws.stop()
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)
        (self.state_dir / TOKEN_FILE).unlink(missing_ok=True)

    def wait(self) -> None:
        while not self._stop.wait(0.5):
            pass


def free_port_range(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 (the per-node listeners
    take one range, as the NLB's security group rule does)."""
    for _ in range(attempts):
        base = free_port()
        if base + count - 1 <= 65535 and all(_bindable("127.0.0.1", base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1 after {attempts} attempts")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _create_time() -> float:
    import psutil

    return psutil.Process().create_time()


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (0600, whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _control_handler(sup: Supervisor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _authorised(self) -> bool:
            given = self.headers.get("Authorization", "")
            expected = f"Bearer {sup.control_token}"
            if hmac.compare_digest(given.encode(), expected.encode()):
                return True
            self._send(401, {"error": f"missing or wrong token: send 'Authorization: Bearer <{TOKEN_FILE} in the state directory>'"})
            return False

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path == "/state":
                state = dict(sup.state)
                state["primary"] = sup.cluster.primary.cluster_id if sup.cluster else None
                state["nodes"] = [
                    {**n, "pid": node.pid, "alive": node.process is not None and node.process.poll() is None}
                    for n, node in zip(sup.state.get("nodes", []), sup.nodes)
                ]
                state["dataplane"] = sup.dataplane.snapshot() if sup.dataplane else {}
                # moto server, the DNS server, the NLB stand-in and the controller are
                # threads of the supervisor; the cache nodes are its child processes.
                state["processes"] = {
                    "supervisor": {"pid": os.getpid(), "hosts": ["aws", "dns", "nlb", "controller", "control"]},
                    **{n["cluster_id"]: {"pid": n["pid"], "alive": n["alive"]} for n in state["nodes"]},
                }
                self._send(200, state)
            elif self.path.startswith("/events"):
                with sup._events_lock:
                    self._send(200, {"events": list(sup.events)})
            else:
                self._send(404, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            try:
                if self.path == "/kill-primary" and getattr(sup, "cluster_mode", None) is not None:
                    from .cluster_mode import kill_primary

                    kill_primary(sup)
                    self._send(202, {"started": time.time()})
                elif self.path == "/kill-primary":
                    assert sup.cluster is not None
                    sup.cluster.start_failover("unplanned")
                    self._send(202, {"started": time.time()})
                elif self.path == "/failover":
                    assert sup.cluster is not None
                    sup.cluster.start_failover("planned")
                    self._send(202, {"started": time.time()})
                elif self.path == "/tick":
                    assert sup.function is not None
                    self._send(200, sup.function.invoke(SCHEDULE_EVENT, "schedule"))
                else:
                    self._send(404, {"error": f"no such path {self.path}"})
            except RuntimeError as exc:
                self._send(409, {"error": str(exc)})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cachebridge.sandbox.supervisor")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--options", help="SandboxOptions as JSON")
    args = parser.parse_args(argv)
    # Everything the supervisor and its redis-server children write (state, logs, node
    # data) is for the owner only.
    os.umask(0o077)
    raw = json.loads(args.options) if args.options else {}
    failover = FailoverOptions(**raw.pop("failover", {}))
    options = SandboxOptions(state_dir=args.state_dir, failover=failover, **raw)
    supervisor = Supervisor(options)

    def on_signal(signum: int, frame: Any) -> None:
        supervisor._stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        supervisor.start()
    except Exception as exc:
        write_private(args.state_dir / "error.txt", f"{exc}\n\n{traceback.format_exc()}")
        supervisor.stop()
        return 1
    try:
        supervisor.wait()
    finally:
        supervisor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
