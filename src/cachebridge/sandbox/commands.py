"""``cachebridge sandbox ...`` and ``cachebridge drill``: click commands, kept out of the
core CLI module because they need the sandbox extra (moto, dnslib, redis-py)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import click

from .nlb_profiles import DEFAULT_PROFILE, PROFILE_NAMES, NlbProfile

__all__ = ["sandbox", "drill", "printed_commands", "require_extra"]

# What the sandbox and the drill import beyond the cli extra, by module, and the extra that
# brings each.
SANDBOX_MODULES = ("moto", "dnslib", "redis", "psutil")
INSTALL_HINT = "pip install 'cachebridge[cli,sandbox]' (from a clone: pip install '.[cli,sandbox]')"


class MissingExtra(click.ClickException):
    """A module of the sandbox extra is not installed: one line, exit status 2."""

    exit_code = 2


def require_extra(command: str, modules: tuple[str, ...] = SANDBOX_MODULES) -> None:
    """Refuse to run ``command`` without the modules it needs, saying what to install."""
    import importlib.util

    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise MissingExtra(f"'cachebridge {command}' needs the sandbox extra (missing: {', '.join(missing)}); install it: {INSTALL_HINT}")


def _running_pid(state_dir: Path) -> int | None:
    """The PID of a live sandbox supervisor in ``state_dir``, if any: not one that exited
    (a zombie nobody reaped), nor a stranger that now holds its PID."""
    from .control import running_supervisor

    return running_supervisor(state_dir)


def _listener_ports(state: dict[str, Any]) -> str:
    listeners = state.get("listeners") or {}
    if not listeners.get("nodes"):
        return ""
    return f"   (reader :{listeners.get('reader')}, nodes :{','.join(map(str, listeners['nodes']))})"


def _serving_note(state: dict[str, Any]) -> str:
    raw = state.get("nlb_profile") or {}
    if raw.get("initial_takes_traffic", True):
        return ""
    wait = raw["registration_delay_s"] * raw.get("time_scale", 1.0)
    return (f"\n                 the NLB endpoint serves once the primary's target is healthy: registration "
            f"({wait:g} s) and its first health checks ('sandbox status' shows it; the drill waits for it)")


def _profile_line(state: dict[str, Any]) -> str:
    raw = state.get("nlb_profile")
    return NlbProfile(**raw).describe() if raw else "unknown"


def _state_dir_option(func: Any) -> Any:
    return click.option(
        "--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".cachebridge-sandbox"),
        show_default=True, help="Where the sandbox keeps its state, logs and node data.",
    )(func)


@click.group()
@click.pass_context
def sandbox(ctx: click.Context) -> None:
    """A whole local "region" on loopback: AWS APIs (moto), real redis-server nodes, DNS,
    an NLB stand-in, and the deployed controller. Needs the sandbox extra
    (pip install 'cachebridge[cli,sandbox]').

    \b
      cachebridge sandbox up            # start it; prints how to connect
      cachebridge drill                 # measure a failover through the NLB
      cachebridge sandbox kill-primary  # an unplanned failover
      cachebridge sandbox down          # stop everything
    """
    require_extra(f"sandbox {ctx.invoked_subcommand or ''}".strip())


@sandbox.command("up")
@_state_dir_option
@click.option("--nodes", type=click.IntRange(2, 5), default=2, show_default=True, help="Cache nodes (127.0.0.2 ...).")
@click.option("--order", type=click.Choice(["dns-first", "notify-first"]), default="dns-first", show_default=True,
              help="On failover, flip DNS before the SNS notification, or after it.")
@click.option("--notify-delay", type=float, default=0.5, show_default=True, help="Seconds between the DNS flip and the notification.")
@click.option("--detect-delay", type=float, default=3.0, show_default=True, help="Unplanned failover: seconds until the dead primary is noticed.")
@click.option("--nlb-profile", type=click.Choice(PROFILE_NAMES), default=DEFAULT_PROFILE, show_default=True,
              help="How the NLB stand-in times registration, deregistration and listener updates: 'documented' "
                   "holds it to AWS's documentation (new targets wait minutes, updates take a while), 'optimistic' "
                   "is a fast NLB.")
@click.option("--time-scale", type=click.FloatRange(0.001, 10, min_open=False), default=1.0, show_default=True,
              help="Multiply every delay the NLB stand-in models (0.1: ten times faster), to keep demos short.")
@click.option("--registration-delay", type=click.FloatRange(0), default=None,
              help="NLB stand-in: seconds before a new target's health checks start  [default: the profile's].")
@click.option("--deregistration-lag", type=click.FloatRange(0), default=None,
              help="NLB stand-in: seconds a deregistered target still takes new connections  [default: the profile's].")
@click.option("--listener-propagation", type=click.FloatRange(0), default=None,
              help="NLB stand-in: seconds before a listener update reaches new connections  [default: the profile's].")
@click.option("--health-check-interval", type=int, help="Target group health check interval  [default: the template's].")
@click.option("--healthy-threshold", type=int, help="Target group healthy threshold  [default: the template's].")
@click.option("--deregistration-delay", type=int, help="Target group deregistration delay  [default: the template's].")
@click.option("--schedule", "schedule_s", type=float, help="Seconds between schedule ticks  [default: the rule's rate].")
@click.option("--event-wait", "event_wait_s", type=float, help="Controller's event_wait_s  [default: the function's].")
@click.option("--layout", type=click.Choice(["switch", "retarget"]), default="switch", show_default=True, help="The stack's layout (see cachebridge deploy --help).")
@click.option("--cluster-mode", is_flag=True, help="A cluster-mode-enabled group instead: a Redis cluster of 3 shards x 2 nodes "
              "(127.0.0.2-7) and the stack in the cluster layout (a listener per node; 'cachebridge endpoints' prints the map).")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def up_command(state_dir: Path, nodes: int, order: str, notify_delay: float, detect_delay: float, nlb_profile: str,
               time_scale: float, registration_delay: float | None, deregistration_lag: float | None,
               listener_propagation: float | None, health_check_interval: int | None, healthy_threshold: int | None,
               deregistration_delay: int | None, schedule_s: float | None, event_wait_s: float | None, as_json: bool,
               layout: str = "switch", cluster_mode: bool = False) -> None:
    """Start the sandbox and return once everything is ready.

    The NLB stand-in follows AWS's documentation by default (--nlb-profile documented): a
    new target takes no traffic for minutes, so the NLB endpoint serves once the primary's
    target is healthy ('cachebridge sandbox status' shows it; 'cachebridge drill' waits
    for it). --time-scale 0.05 runs every modelled delay twenty times faster.
    """
    from .control import SandboxError, up
    from .failover import FailoverOptions
    from .supervisor import SandboxOptions

    options = SandboxOptions(
        state_dir=state_dir.resolve(), nodes=nodes, schedule_s=schedule_s, event_wait_s=event_wait_s,
        health_check_interval_s=health_check_interval, healthy_threshold=healthy_threshold,
        deregistration_delay_s=deregistration_delay, nlb_profile=nlb_profile, time_scale=time_scale,
        registration_delay_s=registration_delay, deregistration_lag_s=deregistration_lag,
        listener_propagation_s=listener_propagation, layout="cluster" if cluster_mode else layout, cluster_mode=cluster_mode,
        failover=FailoverOptions(order=order, notify_delay_s=notify_delay, detect_s=detect_delay),  # type: ignore[arg-type]
    )
    running = _running_pid(options.state_dir)
    if running is not None:
        raise click.ClickException(f"a sandbox is already running (pid {running}); run 'cachebridge sandbox down' first")
    if not as_json:
        click.echo("starting the sandbox (moto, DNS, redis-server nodes, NLB stand-in; deploying the stack)...", err=True)
    try:
        state = up(options)
    except SandboxError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    if state.get("cluster_mode"):
        from .cluster_commands import print_cluster_sandbox

        print_cluster_sandbox(state, options.state_dir)
        return
    nlb = state["nlb"]
    commands = printed_commands(state, state_dir=options.state_dir)
    click.echo(f"""
sandbox ready (pid {state['pid']}, state in {state['state_dir']})

  NLB endpoint   {nlb['host']}:{nlb['port']}   (forwards to the current primary)
  layout         {state.get('layout', 'retarget')}{_listener_ports(state)}
  NLB profile    {_profile_line(state)}{_serving_note(state)}
  AWS endpoint   {state['aws_endpoint_url']}   (moto; region {state['region']})
  DNS server     {state['dns']}
  stack          {state['stack_name']}  function {state['function_name']}
  cluster        {state['replication_group']}: {', '.join(n['cluster_id'] + ' ' + n['host'] + ':' + str(n['port']) for n in state['nodes'])}
""")
    for section, lines in commands.items():
        click.echo(f"{section}:")
        for line in lines:
            click.echo(f"  {line}")
        click.echo("")


def _cli_command() -> str:
    """How to run this cachebridge from any shell: its name when the one on PATH is this
    one, else the script next to this interpreter, else the module."""
    import shlex
    import shutil

    here = Path(sys.executable).parent / "cachebridge"
    on_path = shutil.which("cachebridge")
    if on_path and here.exists() and Path(on_path).resolve() == here.resolve():
        return "cachebridge"
    if here.exists():
        return shlex.quote(str(here.absolute()))
    return f"{shlex.quote(sys.executable)} -m cachebridge.cli"


def printed_commands(state: dict[str, Any], *, state_dir: Path, cli: str | None = None) -> dict[str, list[str]]:
    """The commands ``sandbox up`` prints, by section. Each works pasted into bash or zsh
    from any directory: arguments quoted, the sandbox's state directory, AWS endpoint,
    region, credentials and nameserver given, and cachebridge by a path that resolves."""
    import shlex

    q = shlex.quote
    cb = cli or _cli_command()
    nlb_host, nlb_port = state["nlb"]["host"], state["nlb"]["port"]
    region = state["region"]
    aws_env = " ".join(f"{k}={q(v)}" for k, v in (
        ("AWS_ENDPOINT_URL", state["aws_endpoint_url"]), ("AWS_REGION", region), ("AWS_DEFAULT_REGION", region),
        ("AWS_ACCESS_KEY_ID", "sandbox"), ("AWS_SECRET_ACCESS_KEY", "sandbox"),
    ))
    sd = f"--state-dir {q(str(state_dir.absolute()))}"
    rg = state["replication_group"]
    python_line = (f"import redis; r = redis.Redis(host={json.dumps(nlb_host)}, port={int(nlb_port)}); "
                   f"r.set(\"hello\", \"world\"); print(r.get(\"hello\"))")
    return {
        "connect": [
            f"redis-cli -h {q(nlb_host)} -p {int(nlb_port)} SET hello world",
            f"{q(sys.executable)} -c {q(python_line)}",
        ],
        "fail over, measured (planned with TestFailover, then unplanned)": [
            f"{cb} drill {sd}",
            f"{cb} drill {sd} --kill-primary",
        ],
        "fail over by hand (the AWS CLI's TestFailover, or kill the primary)": [
            f"{aws_env} aws elasticache test-failover --region {q(region)} --replication-group-id {q(rg)} --node-group-id 0001",
            f"{cb} sandbox kill-primary {sd}",
        ],
        "watch": [
            f"{cb} sandbox status {sd}",
            # The controller's own status reads one target group, which only the retarget
            # layout has; sandbox status shows where the switch layout's listeners route.
            *([f"{aws_env} {cb} status --source {q(f'elasticache://{rg}?role=primary')} "
               f"--target-group {q(state['target_group_arn'])} --port {int(state['nodes'][0]['port'])} "
               f"--nameserver {q(state['dns'])} --allow-target-network 127.0.0.0/8"]
              if state.get("target_group_arn") else []),
        ],
        "stop": [f"{cb} sandbox down {sd}"],
    }


@sandbox.command("down")
@_state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print what was stopped and which ports were checked, as one JSON object.")
def down_command(state_dir: Path, as_json: bool) -> None:
    """Stop the sandbox: every process by PID, every port closed."""
    from .control import down

    result = down(state_dir)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif not result["stopped"]:
        click.echo(result["reason"])
    else:
        click.echo(f"sandbox stopped (pid {result['pid']})")
        if result["ports_still_open"]:
            click.echo("still listening: " + ", ".join(result["ports_still_open"]), err=True)
    if result.get("ports_still_open") or result.get("left_running"):
        sys.exit(1)


@sandbox.command("status")
@_state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Endpoints, stack name and PIDs as one JSON object.")
def status_command(state_dir: Path, as_json: bool) -> None:
    """Endpoints, processes, the current primary and the NLB's target states."""
    from .control import SandboxError, control, read_state

    state = read_state(state_dir)
    if state is None:
        raise click.ClickException(f"no sandbox is running (nothing in {state_dir}); start one with 'cachebridge sandbox up'")
    try:
        live = control(state, "/state")
    except SandboxError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(live, indent=2))
        return
    click.echo(f"supervisor pid {live['pid']}  NLB {live['nlb']['host']}:{live['nlb']['port']}  AWS {live['aws_endpoint_url']}  DNS {live['dns']}")
    click.echo(f"stack {live['stack_name']}  layout {live.get('layout', 'retarget')}  primary {live['primary']}")
    click.echo(f"NLB profile {_profile_line(live)}")
    for node in live["nodes"]:
        click.echo(f"  {node['cluster_id']:<16} {node['host']}:{node['port']}  pid {node['pid']}  {'up' if node['alive'] else 'down'}")
    for arn, listener in live["dataplane"].get("listeners", {}).items():
        tg = (listener.get("target_group") or "-").rsplit(":", 1)[-1]
        routing = (listener.get("routing_to") or "-").rsplit(":", 1)[-1]
        moving = f"  (new connections still go to {routing})" if routing != tg else ""
        click.echo(f"  listener :{listener['port']} -> {tg}{moving}{'  ' + listener['error'] if listener.get('error') else ''}")
    for arn, targets in live["dataplane"].get("targets", {}).items():
        click.echo(f"  target group {arn.rsplit(':', 1)[-1]}")
        for target, info in targets.items():
            lag = "  (deregistered; still takes new connections)" if info["state"] == "draining" and info.get("takes_new_connections") else ""
            click.echo(f"    {target:<22} {info['state']:<10} {info['reason'] or ''}{lag}")


@sandbox.command("kill-primary")
@_state_dir_option
def kill_primary_command(state_dir: Path) -> None:
    """An unplanned failover: kill the primary's redis-server; a replica is promoted."""
    from .control import SandboxError, control, read_state

    state = read_state(state_dir)
    if state is None:
        raise click.ClickException("no sandbox is running; start one with 'cachebridge sandbox up'")
    try:
        control(state, "/kill-primary", method="POST")
    except SandboxError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("primary killed; the failover proceeds in the background ('cachebridge sandbox status' to watch)")


@click.command("drill")
@_state_dir_option
@click.option("--stack-name", help="Drill a real stack instead of the sandbox.")
@click.option("--kill-primary", is_flag=True, help="Sandbox only: an unplanned failover instead of TestFailover.")
@click.option("--rate", type=click.FloatRange(1, 2000), default=50.0, show_default=True, help="Writes per second (each followed by a read).")
@click.option("--duration", type=click.FloatRange(5, 3600), default=30.0, show_default=True, help="Seconds of load.")
@click.option("--failover-after", type=click.FloatRange(0, min_open=True), default=None,
              help="Seconds of load before the failover  [default: 5, or a third of --duration when that is shorter].")
@click.option("--ready-timeout", type=click.FloatRange(1, 3600), default=600.0, show_default=True,
              help="Seconds to wait, before the load starts, for the measured path to be healthy (every watched "
                   "target healthy, new connections through the NLB reaching the primary) before giving up.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Draw the timeline to a PNG file.")
@click.option("--yes", "-y", is_flag=True, help="With --stack-name: do not ask before failing the cluster over.")
@click.option("--cluster-mode", is_flag=True, help="A cluster-mode drill on a cluster site of its own (3 shards x 2 redis-server nodes, "
              "a listener per node): redis-py RedisCluster through the address map, one shard failed over, figures per shard.")
def drill(state_dir: Path, stack_name: str | None, kill_primary: bool, rate: float, duration: float,
          failover_after: float | None, ready_timeout: float, as_json: bool, plot_path: str | None, yes: bool,
          cluster_mode: bool = False) -> None:
    """Drive writes and reads through the NLB, fail over, and measure what the client saw.

    Against the sandbox by default; with --stack-name against a deployed stack (uses
    TestFailover, which really fails over your cluster). First waits until the path it
    measures is healthy (every watched target healthy, new connections through the NLB
    reaching the primary). Reports the layout and the NLB profile it ran under, detect_s,
    retarget_s, write_unavailable_s, errors by kind, lost acknowledged writes, and what it
    measured of the two timings AWS does not document: a listener update reaching new
    connections (switch layout) and a new target's registration until healthy.
    """
    require_extra("drill", ("redis",) + (("matplotlib",) if plot_path else ()) + (() if stack_name else SANDBOX_MODULES))
    if cluster_mode:
        if stack_name or plot_path:
            raise click.UsageError("--cluster-mode runs on a cluster site of its own: no --stack-name, no --plot")
        from .cluster_commands import cluster_drill

        cluster_drill(kill_primary=kill_primary, duration=duration, failover_after=failover_after, as_json=as_json)
        return
    from botocore.exceptions import BotoCoreError, ClientError

    from .. import drill as drills
    from .drill_targets import resolve_target

    if failover_after is None:
        failover_after = min(5.0, duration / 3)
    elif failover_after >= duration:
        raise click.BadParameter(f"{failover_after:g} is not below --duration ({duration:g})", param_hint="--failover-after")

    say = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    try:
        target = resolve_target(state_dir=state_dir, stack_name=stack_name, kill_primary=kill_primary)
    except ClientError as exc:
        if stack_name and "does not exist" in str(exc):
            raise click.ClickException(f"stack {stack_name} does not exist (in this account and region)") from None
        raise click.ClickException(f"AWS: {exc}") from None
    except BotoCoreError as exc:
        raise click.ClickException(f"AWS: {exc}") from None
    except (RuntimeError, ValueError, KeyError) as exc:
        raise click.ClickException(str(exc)) from None
    if stack_name and not yes:
        click.confirm(
            f"This fails over the replication group behind stack {stack_name!r} (TestFailover) and writes "
            f"test keys through its NLB. Continue?", abort=True, err=True,
        )

    say(f"waiting until the path the drill measures is healthy (NLB {target.host}:{target.port} to a healthy primary, "
        f"{target.path.layout} layout; at most {ready_timeout:g} s)...")
    try:
        waited = drills.wait_until_ready(target.host, target.port, target.elbv2, target.path, timeout=ready_timeout,
                                         on_wait=lambda reason: say(f"  not yet: {reason}"))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    say(f"path healthy after {waited:.1f} s: every watched target healthy, new connections through the NLB reach the "
        f"primary; failing over {failover_after:.3g} s into {duration:g} s of load")

    progress = None
    if not as_json and sys.stderr.isatty():
        from rich.progress import Progress

        bar = Progress(transient=True)
        task = bar.add_task("drill", total=duration)
        bar.start()

        def progress(elapsed: float, ops: int, errors: int) -> None:
            bar.update(task, completed=elapsed, description=f"drill: {ops} ops, {errors} errors")
    try:
        result = drills.run_drill(
            host=target.host, port=target.port, elbv2=target.elbv2, path=target.path,
            trigger=target.trigger, kind=target.kind, rate=rate, duration=duration, failover_after=failover_after,
            progress=progress, deregistration_delay_s=target.deregistration_delay_s, ready_waited=waited,
            watch_period=target.watch_period, context=target.context,
        )
    except (RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if progress is not None:
            bar.stop()
    result.events = target.events()
    summary = drills.summarise(result, rate)
    if plot_path:
        drills.plot(result, plot_path)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    profile = summary.get("nlb_profile") or {}
    click.echo(f"\n{target.kind} failover drill, {summary.get('layout')} layout: {summary['ops']} operations at {rate:g} writes/s")
    click.echo(f"NLB: {NlbProfile(**profile).describe() if 'registration_delay_s' in profile else profile.get('name')}")
    click.echo("")
    for t, text in drills.timeline(result):
        click.echo(f"  {t:+8.2f}s  {text}")
    click.echo("\nwhat the client saw (seconds from the failover start):\n")
    for key, meaning in _explanations(target.kind, target.deregistration_delay_s):
        click.echo(f"  {key:<28} {summary[key]}")
        for line in textwrap.wrap(meaning, 70):
            click.echo(f"  {'':<28} {line}")
    if plot_path:
        click.echo(f"\n  timeline drawn to {plot_path}")


def _explanations(kind: str, delay_s: float) -> list[tuple[str, str]]:
    """What each figure of the drill means, for the human output."""
    readonly = (
        "writes answered READONLY: they went over connections still open to the old primary, now a replica. "
        f"The NLB keeps those connections for the target group's deregistration delay ({delay_s:g} s here) and "
        "then resets them; clients reconnect to the new primary."
    )
    if kind == "planned":
        readonly += " A planned failover shows them because the old primary stays up, as a replica."
    else:
        readonly += " After a crash the old primary is gone, so clients mostly see connection errors instead."
    return [
        ("detect_s", "until the new primary was registered in the target group, or (switch layout) the primary "
                     "listener forwarded to its node target group: the controller noticed and acted"),
        ("retarget_s", "until the new primary was the only target taking new connections (the old one draining)"),
        ("write_unavailable_s", "the longest stretch without a successful write, as this client saw it"),
        ("readonly_errors", readonly),
        ("readonly_after_termination", "READONLY errors later than that delay (+1 s): 0 when connection termination works"),
        ("lost_acknowledged_writes", "writes the server acknowledged that could not be read back afterwards"),
        ("errors", "failed operations by kind (readonly, connection, timeout...)"),
        ("new_primary_reached_s", "until a new connection through the NLB first reached the new primary (a probe every 200 ms)"),
        ("listener_switched_s", "switch layout: until the primary listener's default action showed the new primary's node group"),
        ("measured_listener_propagation_s", "switch layout: from that listener update until a new connection first reached "
                                            "the new primary; AWS documents no figure for this"),
        ("measured_registration_s", "from a newly registered target first showing up until it was healthy (registration "
                                    "and the initial health checks; AWS: 'can take a few minutes'); none when no "
                                    "registration happened during the drill"),
    ]
