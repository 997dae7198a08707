"""What the answer and write safety rules cost, and what the write lease buys.

1. Agreement cost. A change is applied only once two reads a poll interval apart agree.
   For each ``poll_interval_s``, the wall time of a sync pass that applies a DNS flip is
   compared with a pass that finds nothing to change: the difference is what detection
   pays (expected: one poll interval plus one source read and one target group read).
2. Two controllers at once. Two controllers whose DNS views disagree run ``sync``
   concurrently (three passes each, the second starting up to 80 ms later), with and
   without a lock table, while a watcher reads the group; the script counts the trials in
   which the watcher saw the group with no live target.

Runs against moto server (its own process, started here) and loopback DNS servers.

    python benchmarks/answer_safety.py [--flips 10] [--trials 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import boto3

from cachebridge import nlb
from cachebridge.config import Binding, Config, DnsSourceSpec, Settings
from cachebridge.nlb import TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.sandbox.redis_nodes import free_port
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import Trigger, sync

REGION = "eu-west-1"
PORT = 6379
HOST = "master.orders.abc123.euw1.cache.amazonaws.com"
TABLE = "cachebridge-locks"


def start_moto() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachebridge.sandbox.aws_server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    if not proc.stdout.readline().startswith("ready"):
        proc.kill()
        raise SystemExit("moto server did not start")
    return proc, f"http://127.0.0.1:{port}"


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")


def target_group(endpoint: str, name: str) -> str:
    vpc = client(endpoint, "ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    return client(endpoint, "elbv2").create_target_group(Name=name, Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]


def agreement_cost(endpoint: str, flips: int) -> list[dict[str, Any]]:
    rows = []
    for poll in (0.1, 0.5):
        arn = target_group(endpoint, f"agree-{int(poll * 1000)}")
        with LoopbackDnsServer(Zone(ttl=1), host="127.0.0.1") as dns:
            settings = Settings(nameservers=(dns.address,), poll_interval_s=poll, dns_timeout_s=0.5)
            cfg = Config((Binding("orders", DnsSourceSpec(HOST), arn, PORT, max_targets=1),), settings)
            groups = TargetGroups(client(endpoint, "elbv2"), client(endpoint, "ec2"))
            sources = Sources(DnsResolver(settings.nameservers, settings.dns_timeout_s))
            changed, steady = [], []
            for i in range(flips * 2):
                dns.zone.set_a(HOST, f"10.0.{1 + i % 2}.10")
                for bucket in (changed, steady):  # the flip, then a pass with nothing to do
                    started = time.perf_counter()
                    (result,) = sync(cfg, target_groups=groups, sources=sources, trigger=Trigger(kind="schedule")).bindings
                    bucket.append(time.perf_counter() - started)
                    assert result.status == ("changed" if bucket is changed else "in_sync"), result
        rows.append({
            "poll_interval_s": poll,
            "changed_pass_s": round(statistics.median(changed), 3),
            "in_sync_pass_s": round(statistics.median(steady), 3),
            "detection_cost_s": round(statistics.median(changed) - statistics.median(steady), 3),
        })
    return rows


def race(endpoint: str, trials: int, locked: bool) -> dict[str, Any]:
    arn = target_group(endpoint, f"race-{'locked' if locked else 'unlocked'}")
    elbv2, dynamodb = client(endpoint, "elbv2"), client(endpoint, "dynamodb")
    views = {"A": "10.0.1.11", "B": "10.0.2.22"}
    servers = {n: LoopbackDnsServer(Zone(ttl=1), host="127.0.0.1").start() for n in views}
    try:
        pair = {}
        for name, server in servers.items():
            server.zone.set_a(HOST, views[name])
            settings = Settings(nameservers=(server.address,), poll_interval_s=0.05, dns_timeout_s=0.5,
                                lock_table=TABLE if locked else None, controller_id=name)
            cfg = Config((Binding("orders", DnsSourceSpec(HOST), arn, PORT, max_targets=1),), settings)
            pair[name] = (cfg, TargetGroups(client(endpoint, "elbv2"), client(endpoint, "ec2"), dynamodb=client(endpoint, "dynamodb")),
                          Sources(DnsResolver(settings.nameservers, 0.5)))
        watcher_elbv2 = client(endpoint, "elbv2")
        rng = random.Random(8)
        empty_trials = 0
        for trial in range(trials):
            start = ("10.0.3.33", *views.values())[trial % 3]
            current = [d["Target"] for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]]
            if current:
                elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": t["Id"], "Port": t["Port"]} for t in current])
            elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": start, "Port": PORT}])
            dynamodb.delete_item(TableName=TABLE, Key={"lease_key": {"S": arn}})
            stop, empty = threading.Event(), [0]

            def watch() -> None:
                for _ in range(100_000):
                    if stop.is_set():
                        return
                    if not watcher_elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]:
                        empty[0] += 1

            offset = rng.uniform(0, 0.08)

            def run(name: str) -> None:
                if name == "B":
                    time.sleep(offset)
                cfg, groups, sources = pair[name]
                for _ in range(3):
                    sync(cfg, target_groups=groups, sources=sources)

            watcher = threading.Thread(target=watch)
            watcher.start()
            threads = [threading.Thread(target=run, args=(n,)) for n in pair]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            stop.set()
            watcher.join(10)
            empty_trials += empty[0] > 0
        return {"lock_table": locked, "trials": trials, "trials_with_an_empty_group": empty_trials}
    finally:
        for server in servers.values():
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=10)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    proc, endpoint = start_moto()
    try:
        nlb.clear_caches()
        client(endpoint, "dynamodb").create_table(
            TableName=TABLE, KeySchema=[{"AttributeName": "lease_key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lease_key", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        )
        result = {
            "agreement": agreement_cost(endpoint, args.flips),
            "race": [race(endpoint, args.trials, locked) for locked in (True, False)],
        }
    finally:
        proc.terminate()
        proc.wait(10)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("agreement across two reads (a change waits for a second read):")
    for row in result["agreement"]:
        print(f"  poll_interval_s={row['poll_interval_s']}: pass applying a flip {row['changed_pass_s']} s, "
              f"pass in sync {row['in_sync_pass_s']} s, detection cost {row['detection_cost_s']} s")
    print("two controllers with disagreeing views, a watcher reading the group:")
    for row in result["race"]:
        lock = "with a lock table" if row["lock_table"] else "without a lock table"
        print(f"  {lock}: {row['trials_with_an_empty_group']} of {row['trials']} trials saw an empty group")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
