"""The ``cachebridge`` command line.

Thin on purpose: parse options, build the same adapters the Lambda builds, call
``sync()``, render. Exit codes: 0 every binding in sync (or a dry run), 1 a binding
failed, 2 a usage or configuration error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click
from botocore.exceptions import BotoCoreError

from . import aws
from .config import Config, ConfigError, ElastiCacheSourceSpec
from .errors import CacheBridgeError
from .redact import redact, redacted_output
from .cli_render import (
    Progress,
    make_console,
    emit,
    print_cluster_map,
    print_notes_and_clients,
    render_deploy,
    render_deploy_error,
    render_status,
    render_sync,
)
from .sync import SyncReport, Trigger, sync

__all__ = ["main", "cli"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _selection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML, YAML or JSON file with [[bindings]] and [settings]."),
        click.option("--source", help="One binding's source: dns://HOST, or elasticache://RG_ID[?role=primary|replicas|cluster] (without ?role: the primary). Quote it in a shell: ? is a glob character."),
        click.option("--target-group", help="One binding's target group: name or ARN (an IP target group)."),
        # Numbers stay text here: config.py reads them (ASCII digits only; click's int()
        # would take '\u0663' as 3).
        click.option("--port", metavar="INTEGER", help="Target port registered for that binding  [default: 6379]."),
        click.option("--name", "binding_name", help="Name of that binding  [default: derived from the source]."),
        click.option("--nameserver", "nameservers", multiple=True, metavar="IP[:PORT]", help="Resolve with these nameservers, in order (repeatable)  [default: the system resolver]."),
        click.option("--max-changes", metavar="INTEGER", help="Most registrations + deregistrations per binding per run  [default: 4]."),
        click.option("--dns-timeout", metavar="SECONDS", help="Seconds to wait for each nameserver  [default: 2]."),
        click.option("--allow-target-network", "allowed_target_networks", multiple=True, metavar="CIDR", help="Accept target addresses in this network instead of the target group's VPC, loopback included (repeatable; for local sandboxes)."),
        click.option("--region", help="AWS region  [default: AWS_REGION / AWS_DEFAULT_REGION / profile]."),
        click.option("--profile", help="AWS profile  [default: AWS_PROFILE]."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load_config(
    config_path: str | None,
    source: str | None,
    target_group: str | None,
    port: str | None,
    binding_name: str | None,
    nameservers: tuple[str, ...],
    max_changes: str | None,
    dns_timeout: str | None,
    region: str | None,
    allowed_target_networks: tuple[str, ...] = (),
) -> Config:
    if config_path and (source or target_group):
        raise click.UsageError("use either --config or --source/--target-group, not both")
    if config_path:
        config = Config.from_file(config_path)
    elif source and target_group:
        config = Config.single(source, target_group, port=port, name=binding_name)
    elif source or target_group:
        raise click.UsageError("--source and --target-group go together")
    else:
        raise click.UsageError("say what to sync: --config FILE, or --source S --target-group TG [--port P]")
    try:
        return config.with_settings(
            nameservers=tuple(nameservers) or None,
            max_changes=max_changes,
            dns_timeout_s=dns_timeout,
            region=region,
            allowed_target_networks=tuple(allowed_target_networks) or None,
        )
    except ConfigError as exc:
        # Name the flag the user typed, not the setting behind it.
        flag = _SETTING_FLAGS.get(exc.field.removeprefix("settings."), exc.field)
        raise ConfigError(flag, exc.problem, exc.accepted) from None


_SETTING_FLAGS = {
    "nameservers": "--nameserver",
    "max_changes": "--max-changes",
    "dns_timeout_s": "--dns-timeout",
    "region": "--region",
    "allowed_target_networks": "--allow-target-network",
}


def _run(ctx_args: dict[str, Any], *, dry_run: bool, force: bool = False) -> SyncReport:
    profile = ctx_args.pop("profile")
    config = _load_config(**ctx_args)
    try:
        target_groups, sources = aws.adapters(config.settings, profile)
    except Exception as exc:  # botocore's NoRegionError, ProfileNotFound...
        raise ConfigError("AWS settings", str(exc), "AWS_REGION or --region; a known --profile") from None
    return sync(config, target_groups=target_groups, sources=sources, dry_run=dry_run, trigger=Trigger(kind="manual"), force=force)


class _Group(click.Group):
    """Turns configuration errors into exit code 2, and cachebridge and AWS errors into
    exit code 1, each with a one-line message instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        # Whatever a command prints (reports, errors, the drill's timeline) passes through
        # redact(): a password in a redis:// or endpoint URL never reaches the terminal.
        with redacted_output():
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"Error: {redact(str(exc))}", err=True)
            ctx.exit(EXIT_USAGE)
        except CacheBridgeError as exc:
            click.echo(f"Error: {redact(str(exc))}", err=True)
            ctx.exit(EXIT_FAILED)
        except BotoCoreError as exc:  # no credentials, no route to the endpoint, a timeout...
            # botocore names the endpoint it could not reach, user:password@ included.
            click.echo(f"Error: AWS: {redact(str(exc))}", err=True)
            ctx.exit(EXIT_FAILED)
        except click.ClickException as exc:
            exc.message = redact(exc.message)
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cachebridge")
def cli() -> None:
    """Keep an NLB target group pointed at the current ElastiCache primary.

    \b
    Reconcile once, now:
      cachebridge sync --source 'elasticache://orders?role=primary' --target-group orders-primary
    See what would change, and the target health:
      cachebridge status --config cachebridge.toml

    AWS region, credentials and endpoint come from the standard AWS settings
    (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL...), so emulators need no extra flag.
    """


@cli.command("sync")
@_selection_options
@click.option("--dry-run", is_flag=True, help="Plan and print; change nothing.")
@click.option("--force", is_flag=True, help="Write a target group owned by a deployed stack (tag cachebridge:owner), or one another controller changed moments ago.")
def sync_command(dry_run: bool, force: bool, as_json: bool, **kwargs: Any) -> None:
    """Make each binding's target group match its source, once.

    Registers new targets before deregistering stale ones, never deregisters because a
    source failed or answered empty, and changes at most --max-changes targets per binding.
    A target group owned by a deployed stack is left to that stack's controller unless
    --force.

    \b
    Exit status: 0 every binding in sync (or dry run), 1 a binding failed, 2 bad usage or config.
    """
    report = _run(kwargs, dry_run=dry_run, force=force)
    emit(report, as_json, render_sync)
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


@cli.command("status")
@_selection_options
def status_command(as_json: bool, **kwargs: Any) -> None:
    """Show each binding's source, desired and registered targets, health and drift.

    Changes nothing (it is a dry run of sync). Exit status: 0, or 1 if a binding could not
    be read, 2 bad usage or config.
    """
    report = _run(kwargs, dry_run=True)
    emit(report, as_json, render_status)
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


# -- deployment ------------------------------------------------------------------------------


def _aws_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--profile", help="AWS profile  [default: AWS_PROFILE].")(func)
    func = click.option("--region", help="AWS region  [default: AWS_REGION / AWS_DEFAULT_REGION / profile].")(func)
    return func


@cli.command("template")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the template to this file instead of printing it.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), help="Template format  [default: from --output's suffix, else yaml].")
def template_command(output: str | None, fmt: str | None) -> None:
    """Print (or write) the CloudFormation template of one cachebridge stack."""
    from .deploy import template

    if fmt is None:
        fmt = "json" if output and output.lower().endswith(".json") else "yaml"
    text = template.render(fmt)
    if output:
        try:
            with open(output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise ConfigError("--output", f"cannot write {output!r}: {exc.strerror}") from None
        click.echo(f"wrote {output} ({fmt})", err=True)
    else:
        click.echo(text, nl=False)


def _bytecode_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--python", "runtime_python", metavar="PATH", help="With --bytecode: the Python of the Lambda runtime's version that compiles it  [default: python3.13 on PATH].")(f)
    f = click.option("--bytecode", is_flag=True, help="Ship bytecode for the Lambda runtime's Python (3.13) beside the sources: a faster cold start, a larger zip (see the README's figures). Needs that Python here.")(f)
    return f


def _bytecode(bytecode: bool, runtime_python: str | None, modules: str = "imported", keep_sources: bool = True) -> Any:
    """``package.BytecodeOptions`` for the bytecode flags, or None; the interpreter is found
    and checked here, before anything is built or read (a ConfigError, exit 2, otherwise)."""
    if not bytecode:
        if runtime_python:
            raise ConfigError("--python", "compiles bytecode, so it goes with --bytecode", "--bytecode --python PATH")
        return None
    from .deploy import package as packaging

    return packaging.BytecodeOptions(packaging.find_runtime_python(runtime_python), modules, keep_sources)  # type: ignore[arg-type]


@cli.command("package")
@click.option("--bucket", help="Upload the zip to this S3 bucket (under its content-addressed key).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the zip to this file (alone: no upload).")
@_bytecode_options
@click.option("--bytecode-modules", type=click.Choice(["imported", "all"]), default="imported", show_default=True, help="With --bytecode: the modules the handler can import, or every module.")
@click.option("--no-sources", "drop_sources", is_flag=True, help="With --bytecode: ship the compiled modules without their sources (a smaller zip; tracebacks then show no source lines).")
@_aws_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def package_command(
    bucket: str | None,
    output: str | None,
    bytecode: bool,
    runtime_python: str | None,
    bytecode_modules: str,
    drop_sources: bool,
    region: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """Build the Lambda zip (cachebridge's runtime modules and dnspython, nothing else).

    The zip is reproducible: the same sources (and, with --bytecode, the same Python
    version) give the same bytes and the same S3 key, cachebridge/lambda-<sha256
    prefix>.zip. An object already under that key is not uploaded again.

    \b
    cachebridge package --output lambda.zip
    cachebridge package --output lambda.zip --bytecode --python ~/.pyenv/versions/3.13.0/bin/python3.13
    """
    from .deploy import package as packaging
    from .deploy.stack import upload_package

    if not bytecode and (bytecode_modules != "imported" or drop_sources):
        raise ConfigError("--no-sources" if drop_sources else "--bytecode-modules", "only with --bytecode", "--bytecode")

    if not bucket and not output:
        raise click.UsageError("say where the zip goes: --bucket B to upload it, or --output F.zip to write it")
    if bucket:
        from .deploy.artifacts import bucket_name_problem

        problem = bucket_name_problem(bucket)
        if problem is not None:
            raise ConfigError("--bucket", problem)
    options = _bytecode(bytecode, runtime_python, bytecode_modules, not drop_sources)
    built = packaging.build(bytecode=options)
    out: dict[str, Any] = {"sha256": built.sha256, "size": built.size, "key": built.key, "entries": len(built.entries)}
    if options is not None:
        out["bytecode"] = {"python": options.python.path, "cache_tag": options.python.cache_tag,
                           "modules": options.modules, "sources": options.keep_sources,
                           "pycs": sum(name.endswith(".pyc") for name in built.entries)}
    if output:
        try:
            built.write(output)
        except OSError as exc:
            raise ConfigError("--output", f"cannot write {output!r}: {exc.strerror}") from None
        out["file"] = output
    if bucket:
        uploaded = upload_package(_clients(region, profile)("s3"), bucket, built)
        out.update(location=f"s3://{bucket}/{built.key}", bucket=bucket, uploaded=uploaded)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if output:
        click.echo(f"wrote {output}  sha256 {built.sha256}  {built.size} bytes, {len(built.entries)} files")
    if bucket:
        click.echo(f"{out['location']}  ({'uploaded' if out['uploaded'] else 'already there, not uploaded'})")


def _clients(region: str | None, profile: str | None) -> Any:
    from .deploy.stack import Clients

    return Clients(region, profile)


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


@cli.command("deploy")
@click.option("--stack-name", required=True, help="CloudFormation stack name (any number of stacks per account).")
@click.option("--replication-group", "replication_group", required=True, help="ElastiCache replication group id (cluster mode disabled).")
@click.option("--vpc", required=True, help="VPC of the replication group; the NLB lives there.")
@click.option("--subnets", required=True, help="Comma-separated subnet ids for the NLB, one per Availability Zone.")
@click.option("--allowed-cidr", "allowed_cidrs", multiple=True, metavar="CIDR", help="IPv4 range allowed to connect (repeatable, or comma-separated). Required.")
@click.option("--allow-any-source", is_flag=True, help="Allow 0.0.0.0/0 in --allowed-cidr, on purpose.")
@click.option("--scheme", type=click.Choice(["internet-facing", "internal"]), default="internet-facing", show_default=True, help="internal: clients over VPN / peering.")
@click.option("--listener-protocol", type=click.Choice(["TCP", "TLS"]), default="TCP", show_default=True, help="TLS terminates on the NLB with --certificate-arn.")
@click.option("--listener-port", type=int, help="Port clients connect to  [default: the cache's port].")
@click.option("--certificate-arn", help="ACM certificate for a TLS listener (a name of yours pointing at the NLB).")
@click.option("--cache-security-group", help="Security group of the cache  [default: read from the replication group].")
@click.option("--schedule", "schedule_expression", help="Safety-net schedule  [default: rate(1 minute)].")
@click.option("--schedule-rule-name", help="Name of the schedule rule  [default: <stack name>-sync].")
@click.option("--notification-topic-arn", help="The group's ElastiCache notification topic  [default: its current one, else one the stack creates].")
@click.option("--health-check-interval", type=int, help="Seconds between health checks  [default: 10].")
@click.option("--healthy-threshold", type=int, help="Checks for a target to turn healthy/unhealthy  [default: 2].")
@click.option("--deregistration-delay", type=int, help="Seconds the old primary keeps connections  [default: 5].")
@click.option("--layout", type=click.Choice(["switch", "retarget", "cluster"]), default=None, help="switch: a target group and listener per cache node, the primary listener switched on failover; retarget: one target group re-pointed (waits for NLB registration); cluster (cluster mode enabled): a listener per node for cluster clients and their address map  [default: cluster for a cluster-mode-enabled group, switch for a new stack otherwise, the stack's own on an update].")
@click.option("--reader-port", type=int, help="Port of the reader listener (every replica)  [default: listener port + 1].")
@click.option("--node-port-base", type=int, help="Switch layout: first per-node listener port, one per node slot  [default: after the reader port].")
@click.option("--tcp-idle-timeout", type=int, metavar="SECONDS", help="Idle seconds before a TCP listener closes a connection, 60-6000 (pub/sub, blocking commands)  [default: 350].")
@click.option("--reserved-concurrency", type=int, metavar="N", help="Reserve N concurrent executions for the controller; Lambda refuses it when less than 100 would stay unreserved  [default: 0, none].")
@click.option("--lambda-subnets", help="Comma-separated subnets of --vpc: run the controller in the VPC (VPC resolver); they need a NAT route or --create-vpc-endpoints  [default: outside the VPC].")
@click.option("--lambda-security-group", help="With --lambda-subnets: the controller's security group  [default: one the stack creates, HTTPS out only].")
@click.option("--create-vpc-endpoints", is_flag=True, help="With --lambda-subnets: create interface endpoints for the ELB, ElastiCache and EC2 APIs (for subnets without NAT).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="A config file (TOML/YAML/JSON) of more bindings for the controller, besides the stack's own; their target groups must be tagged cachebridge:owner=<stack name>. Small sets go in the function's environment, larger ones in a file inside its zip.")
@click.option("--wire-notifications/--no-wire-notifications", default=None, help="Set the stack's topic on the replication group  [default: ask].")
@click.option("--invoke", type=click.Choice(["lambda", "local", "none"]), default="lambda", show_default=True, help="How to run the first sync: invoke the function, run it in this process with its environment, or skip.")
@click.option("--nameserver", "nameservers", multiple=True, metavar="IP[:PORT]", help="With --invoke local only: resolve node names through these nameservers.")
@click.option("--yes", "-y", is_flag=True, help="Answer yes to questions (wiring the notification topic).")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds to wait for the stack.")
@click.option("--poll-interval", type=float, default=5.0, show_default=True, help="Seconds between stack status reads.")
@_bytecode_options
@_aws_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (progress goes to stderr).")
def deploy_command(
    stack_name: str,
    replication_group: str,
    vpc: str,
    subnets: str,
    allowed_cidrs: tuple[str, ...],
    allow_any_source: bool,
    scheme: str,
    listener_protocol: str,
    listener_port: int | None,
    certificate_arn: str | None,
    cache_security_group: str | None,
    schedule_expression: str | None,
    schedule_rule_name: str | None,
    notification_topic_arn: str | None,
    health_check_interval: int | None,
    healthy_threshold: int | None,
    deregistration_delay: int | None,
    tcp_idle_timeout: int | None,
    reserved_concurrency: int | None,
    lambda_subnets: str | None,
    lambda_security_group: str | None,
    create_vpc_endpoints: bool,
    config_path: str | None,
    wire_notifications: bool | None,
    invoke: str,
    nameservers: tuple[str, ...],
    yes: bool,
    timeout: float,
    poll_interval: float,
    region: str | None,
    profile: str | None,
    as_json: bool,
    layout: str | None = None,
    reader_port: int | None = None,
    node_port_base: int | None = None,
    bytecode: bool = False,
    runtime_python: str | None = None,
) -> None:
    """Create or update the stack that gives clients outside the VPC an NLB on the primary.

    Reads the replication group (security group, port, TLS), uploads the Lambda zip to the
    artifact bucket, applies the template through a change set with live progress, prints
    the outputs and runs one sync. Running it again with nothing changed does nothing.

    \b
    Exit status: 0 deployed (or nothing to change), 1 the stack or the first sync failed,
    2 bad input (nothing was created).
    """
    from .config import Config, parse_nameserver
    from .deploy.stack import DeployRequest, deploy
    from .errors import DeployError

    bytecode_options = _bytecode(bytecode, runtime_python)
    extra_bindings = Config.from_file(config_path).bindings if config_path else ()

    request = DeployRequest(
        stack_name=stack_name,
        replication_group_id=replication_group,
        vpc_id=vpc.strip(),
        subnet_ids=_split((subnets,)),
        allowed_cidrs=_split(allowed_cidrs),
        allow_any_source=allow_any_source,
        scheme=scheme,
        listener_protocol=listener_protocol.upper(),
        listener_port=listener_port,
        certificate_arn=certificate_arn,
        cache_security_group_id=cache_security_group,
        schedule_expression=schedule_expression,
        schedule_rule_name=schedule_rule_name,
        notification_topic_arn=notification_topic_arn,
        health_check_interval_s=health_check_interval,
        healthy_threshold=healthy_threshold,
        deregistration_delay_s=deregistration_delay,
        layout=layout,
        reader_port=reader_port,
        node_port_base=node_port_base,
        tcp_idle_timeout_s=tcp_idle_timeout,
        reserved_concurrency=reserved_concurrency,
        lambda_subnet_ids=_split((lambda_subnets,)) if lambda_subnets else (),
        lambda_security_group_id=lambda_security_group,
        create_vpc_endpoints=create_vpc_endpoints,
        extra_bindings=extra_bindings,
    )
    servers = tuple(parse_nameserver(ns, "--nameserver") for ns in nameservers)
    if wire_notifications is None and yes:
        wire_notifications = True
    progress = Progress(as_json)
    confirm: Callable[[str, str], bool] | None = None
    if wire_notifications is None and sys.stdin.isatty() and not as_json:
        def ask(rg_id: str, topic: str) -> bool:
            with progress.paused():
                return click.confirm(f"Set {topic} as the notification topic of {rg_id}, so failovers reach the controller at once?", default=True)

        confirm = ask

    try:
        with progress:
            result = deploy(
                request,
                clients=_clients(region, profile),
                invoke=invoke,  # type: ignore[arg-type]
                nameservers=servers,
                wire_notifications=wire_notifications,
                confirm_wiring=confirm,
                on_event=progress.event,
                on_step=progress.step,
                poll_s=poll_interval,
                timeout_s=timeout,
                bytecode=bytecode_options,
            )
    except DeployError as exc:
        render_deploy_error(exc, as_json)
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        render_deploy(result)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


@cli.command("destroy")
@click.option("--stack-name", required=True, help="The stack to delete.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds to wait for the deletion.")
@click.option("--poll-interval", type=float, default=5.0, show_default=True, help="Seconds between stack status reads.")
@_aws_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (progress goes to stderr).")
def destroy_command(stack_name: str, yes: bool, timeout: float, poll_interval: float, region: str | None, profile: str | None, as_json: bool) -> None:
    """Delete a cachebridge stack and everything it created, and wait.

    Asks first (--yes skips the question). The artifact bucket stays: other stacks share it.
    Exit status: 0 deleted (or no such stack), 1 the deletion failed (the resources left
    behind are listed).
    """
    from .deploy.stack import destroy
    from .errors import DeployError

    if not yes:
        click.confirm(f"Delete stack {stack_name} and everything it created?", abort=True, err=True)
    progress = Progress(as_json)
    try:
        with progress:
            result = destroy(stack_name, clients=_clients(region, profile), on_event=progress.event, poll_s=poll_interval, timeout_s=timeout)
    except DeployError as exc:
        render_deploy_error(exc, as_json)
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
        return
    from rich.markup import escape

    console = make_console()
    if not result.existed:
        console.print(f"stack {stack_name} does not exist: nothing to delete")
        return
    console.print(f"[green]stack {stack_name} deleted[/] ({result.status})")
    for leftover in result.leftovers:
        console.print(f"[yellow]left behind[/] {escape(str(leftover))}")
    for note in result.notes:
        console.print(f"[yellow]note[/] {escape(note)}")


@cli.command("endpoints")
@click.option("--stack-name", help="A cachebridge stack: read its outputs, its replication group and its listener certificate.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="A cachebridge config file: each binding's target group, the listener forwarding to it, and its source.")
@click.option("--server-name", help="The TLS name clients verify  [default: the cache's primary endpoint (TCP listener), the listener certificate's name (TLS listener)].")
@click.option("--ca-file", type=click.Path(dir_okay=False), help="A CA bundle clients verify with, put in the snippets  [default: the client's system trust store].")
@click.option("--nlb-host", help="Cluster mode: the name clients use for the NLB in the address map (a DNS record of yours pointing at it)  [default: the NLB's DNS name].")
@_aws_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: host, port, tls, server_name and a snippet per client.")
def endpoints_command(stack_name: str | None, config_path: str | None, server_name: str | None, ca_file: str | None,
                      region: str | None, profile: str | None, as_json: bool, nlb_host: str | None = None) -> None:
    """Say how each client (redis-cli, redis-py, ioredis, Lettuce, Jedis, go-redis) connects through the NLB.

    With a TCP listener in front of a cache with in-transit encryption, TLS passes through:
    clients see the cache's certificate, so they connect to the NLB and verify the cache's
    primary endpoint name (rediss://<NLB DNS name> alone fails verification). With a TLS
    listener, they connect to the name on your certificate and verify it as usual.

    \b
      cachebridge endpoints --stack-name orders-external
      cachebridge endpoints --config cachebridge.toml --json
    """
    from botocore.exceptions import ClientError

    from . import endpoints

    if bool(stack_name) == bool(config_path):
        raise click.UsageError("say which NLB: --stack-name NAME or --config FILE")
    clients = _clients(region, profile)
    found: list[tuple[str, Any]] = []
    maps: list[tuple[str, Any]] = []
    try:
        if stack_name:
            from .address_map import read_stack

            cluster_map = read_stack(stack_name, clients=clients, nlb_host=nlb_host)
            if cluster_map is not None:
                maps.append((stack_name, cluster_map))
            else:
                found.append((stack_name, endpoints.from_stack(stack_name, clients=clients, server_name=server_name, ca_file=ca_file)))
        else:
            config = Config.from_file(config_path)  # type: ignore[arg-type]
            maps.extend(_cluster_maps(config, clients("elbv2"), nlb_host))
            for binding in config.bindings:
                if binding.layout == "cluster" or (isinstance(binding.source, ElastiCacheSourceSpec) and binding.source.role == "cluster"):
                    continue  # in the cluster map: node listeners, and the configuration listener
                found.append((binding.name, endpoints.from_binding(
                    str(binding.source), binding.target_group, elbv2=clients("elbv2"), elasticache=clients("elasticache"),
                    acm=clients("acm"), server_name=server_name, ca_file=ca_file,
                )))
    except ClientError as exc:  # a target group that is not there, access denied...
        raise CacheBridgeError(f"AWS: {exc}") from None
    if as_json:
        out: dict[str, Any] = {"endpoints": {name: e.to_json() for name, e in found}}
        if maps:
            out["cluster_maps"] = {name: m.to_json() for name, m in maps}
        click.echo(json.dumps(out, indent=2))
        return
    for name, m in maps:
        print_cluster_map(name, m)
    for name, e in found:
        click.echo(f"== {name}: {e.listener_protocol} listener on {e.nlb_dns_name}:{e.port}")
        click.echo(e.summary)
        print_notes_and_clients(e.warnings, e.clients)


def _cluster_maps(config: Config, elbv2: Any, nlb_host: str | None = None) -> list[tuple[str, Any]]:
    """The address map of each cluster binding; the configuration listener is the group of
    a retarget binding reading the same ``role=cluster`` source."""
    from .address_map import read

    maps = []
    for binding in config.bindings:
        if binding.layout != "cluster":
            continue
        config_tg = next(
            (b.target_group for b in config.bindings if b.layout == "retarget" and b.source == binding.source), None
        )
        maps.append((binding.name, read(elbv2, binding.node_target_groups, config_tg, nlb_host=nlb_host)))
    return maps


def _add_sandbox_commands() -> None:
    # The sandbox and the drill need the sandbox extra (moto, dnslib, redis-py); without
    # it the rest of the CLI still works.
    try:
        from .sandbox.commands import drill, sandbox
    except ImportError:
        return
    cli.add_command(sandbox)
    cli.add_command(drill)


_add_sandbox_commands()


def main() -> None:
    cli(prog_name="cachebridge")


if __name__ == "__main__":
    main()
