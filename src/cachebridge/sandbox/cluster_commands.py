"""``cachebridge drill --cluster-mode``: one cluster-mode drill on a cluster site of its own
(``cluster_site``), its figures per shard."""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path
from typing import Any

import click

__all__ = ["cluster_drill", "print_cluster_sandbox"]


def cluster_drill(*, kill_primary: bool, duration: float, failover_after: float | None, as_json: bool) -> None:
    from .cluster_site import drill

    if failover_after is None:
        failover_after = min(3.0, duration / 3)
    elif failover_after >= duration:
        raise click.BadParameter(f"{failover_after:g} is not below --duration ({duration:g})", param_hint="--failover-after")
    kind = "kill" if kill_primary else "planned"
    say = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    say(f"starting a cluster site (3 shards x 2 nodes, a listener per node), then a {kind} failover of shard 0001 "
        f"after {failover_after:g} s of {duration:g} s")
    with tempfile.TemporaryDirectory(prefix="cachebridge-cluster-drill-") as workdir:
        result = drill(Path(workdir), kind=kind, duration_s=duration, failover_after_s=failover_after)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(f"{kind} failover of shard {result.failed_shard}: promotion {result.promotion_s:.2f} s (the cluster's own)")
    click.echo(f"{'shard':<7} {'failed over':<12} {'writes':>7} {'errors':>7} {'write_unavailable_s':>20} {'lost':>5}")
    for s in result.shards.values():
        click.echo(f"{s.shard:<7} {'yes' if s.failed_over else 'no':<12} {s.writes:>7} {s.errors:>7} {s.write_unavailable_s:>20.3f} {s.lost:>5}")
    click.echo("the NLB " + ("changed" if result.nlb_changed else "did not change: node addresses are stable, clients followed the cluster"))


def print_cluster_sandbox(state: dict[str, Any], state_dir: Path) -> None:
    """What ``sandbox up --cluster-mode`` prints: where things are, and commands that work
    pasted into bash or zsh."""
    from .commands import _cli_command

    q = shlex.quote
    cb = _cli_command()
    aws_env = " ".join(f"{k}={q(v)}" for k, v in (
        ("AWS_ENDPOINT_URL", state["aws_endpoint_url"]), ("AWS_REGION", state["region"]), ("AWS_DEFAULT_REGION", state["region"]),
        ("AWS_ACCESS_KEY_ID", "sandbox"), ("AWS_SECRET_ACCESS_KEY", "sandbox"),
    ))
    sd = f"--state-dir {q(str(state_dir.absolute()))}"
    nodes = ", ".join(f"{n['cluster_id']} {n['host']}:{n['port']}" for n in state["nodes"])
    click.echo(f"""
sandbox ready, cluster mode (pid {state['pid']}, state in {state['state_dir']})

  configuration  127.0.0.1:{state['listeners']['configuration']}   (every node; cluster clients start here)
  node listeners 127.0.0.1:{', '.join(map(str, state['listeners']['nodes']))}
  AWS endpoint   {state['aws_endpoint_url']}   (moto; region {state['region']})
  DNS server     {state['dns']}
  stack          {state['stack_name']}  function {state['function_name']}
  cluster        {state['replication_group']}: {nodes}

the address map and a snippet per client (redis-py, ioredis, node-redis, Lettuce, go-redis):
  {aws_env} {cb} endpoints --stack-name {q(state['stack_name'])} --nlb-host 127.0.0.1

fail a shard over (TestFailover on node group 0001: CLUSTER FAILOVER on its replica; or kill its primary):
  {aws_env} aws elasticache test-failover --replication-group-id {q(state['replication_group'])} --node-group-id 0001
  {cb} sandbox kill-primary {sd}

stop:
  {cb} sandbox down {sd}
""")
