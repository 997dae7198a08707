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

from . import aws
from .config import Config, ConfigError, Settings
from .errors import CacheBridgeError
from .nlb import TargetGroups
from .sources import DnsResolver, Sources
from .sync import SyncReport, Trigger, sync

__all__ = ["main", "cli"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _selection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML, YAML or JSON file with [[bindings]] and [settings]."),
        click.option("--source", help="One binding's source: dns://HOST or elasticache://RG_ID?role=primary|replicas."),
        click.option("--target-group", help="One binding's target group: name or ARN (an IP target group)."),
        click.option("--port", type=int, help="Target port registered for that binding  [default: 6379]."),
        click.option("--name", "binding_name", help="Name of that binding  [default: derived from the source]."),
        click.option("--nameserver", "nameservers", multiple=True, metavar="IP[:PORT]", help="Resolve with these nameservers, in order (repeatable)  [default: the system resolver]."),
        click.option("--max-changes", type=int, help="Most registrations + deregistrations per binding per run  [default: 4]."),
        click.option("--dns-timeout", type=float, help="Seconds to wait for each nameserver  [default: 2]."),
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
    port: int | None,
    binding_name: str | None,
    nameservers: tuple[str, ...],
    max_changes: int | None,
    dns_timeout: float | None,
    region: str | None,
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
    return config.with_settings(
        nameservers=tuple(nameservers) or None,
        max_changes=max_changes,
        dns_timeout_s=dns_timeout,
        region=region,
    )


def build_adapters(settings: Settings, profile: str | None = None) -> tuple[TargetGroups, Sources]:
    """The adapters both entry points use, built from the standard AWS settings."""
    elbv2 = aws.client("elbv2", settings.region, profile)
    ec2 = aws.client("ec2", settings.region, profile)
    target_groups = TargetGroups(elbv2, ec2)
    sources = Sources(
        DnsResolver(settings.nameservers, settings.dns_timeout_s),
        lambda: aws.client("elasticache", settings.region, profile),
    )
    return target_groups, sources


def _run(ctx_args: dict[str, Any], *, dry_run: bool) -> SyncReport:
    profile = ctx_args.pop("profile")
    config = _load_config(**ctx_args)
    try:
        target_groups, sources = build_adapters(config.settings, profile)
    except Exception as exc:  # botocore's NoRegionError, ProfileNotFound...
        raise ConfigError("AWS settings", str(exc), "AWS_REGION or --region; a known --profile") from None
    return sync(config, target_groups=target_groups, sources=sources, dry_run=dry_run, trigger=Trigger(kind="manual"))


class _Group(click.Group):
    """Turns configuration errors into exit code 2 with a one-line message."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except CacheBridgeError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_FAILED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cachebridge")
def cli() -> None:
    """Keep an NLB target group pointed at the current ElastiCache primary.

    \b
    Reconcile once, now:
      cachebridge sync --source elasticache://orders?role=primary --target-group orders-primary
    See what would change, and the target health:
      cachebridge status --config cachebridge.toml

    AWS region, credentials and endpoint come from the standard AWS settings
    (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL...), so emulators need no extra flag.
    """


@cli.command("sync")
@_selection_options
@click.option("--dry-run", is_flag=True, help="Plan and print; change nothing.")
def sync_command(dry_run: bool, as_json: bool, **kwargs: Any) -> None:
    """Make each binding's target group match its source, once.

    Registers new targets before deregistering stale ones, never deregisters because a
    source failed or answered empty, and changes at most --max-changes targets per binding.

    \b
    Exit status: 0 every binding in sync (or dry run), 1 a binding failed, 2 bad usage or config.
    """
    report = _run(kwargs, dry_run=dry_run)
    _emit(report, as_json, _render_sync)
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


@cli.command("status")
@_selection_options
def status_command(as_json: bool, **kwargs: Any) -> None:
    """Show each binding's source, desired and registered targets, health and drift.

    Changes nothing (it is a dry run of sync). Exit status: 0, or 1 if a binding could not
    be read, 2 bad usage or config.
    """
    report = _run(kwargs, dry_run=True)
    _emit(report, as_json, _render_status)
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


# -- rendering -------------------------------------------------------------------------------


def _emit(report: SyncReport, as_json: bool, render: Callable[[SyncReport], None]) -> None:
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        render(report)


_STATUS_STYLE = {"in_sync": "green", "changed": "cyan", "dry_run": "yellow", "error": "bold red", "skipped": "red"}


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _targets(items: Any) -> str:
    return "\n".join(str(t) for t in items) or "-"


def _render_sync(report: SyncReport) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title="cachebridge sync", title_justify="left")
    for column in ("binding", "status", "desired", "register", "deregister", "registered after", "ms"):
        table.add_column(column, overflow="fold")
    for b in report.bindings:
        style = _STATUS_STYLE.get(b.status, "")
        table.add_row(
            b.name,
            f"[{style}]{b.status}[/]",
            _targets(b.desired),
            _targets(b.register),
            _targets(b.deregister),
            _targets(b.registered_after),
            f"{b.duration_ms:.0f}",
        )
    console.print(table)
    _print_notes(console, report)


def _render_status(report: SyncReport) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title="cachebridge status", title_justify="left")
    for column in ("binding", "source", "desired", "registered (health)", "drift"):
        table.add_column(column, overflow="fold")
    for b in report.bindings:
        registered = "\n".join(f"{t} ({state})" for t, state in b.health.items()) or "-"
        drift = "[red]error[/]" if b.status == "error" else (f"[yellow]{b.drift}[/]" if b.drift else "[green]0[/]")
        table.add_row(b.name, b.source, _targets(b.desired), registered, drift)
    console.print(table)
    _print_notes(console, report)


def _print_notes(console: Any, report: SyncReport) -> None:
    for b in report.bindings:
        if b.error:
            console.print(f"[bold red]error[/] {b.name}: {b.error}")
        for warning in b.warnings:
            console.print(f"[yellow]warning[/] {b.name}: {warning}")


def main() -> None:
    cli(prog_name="cachebridge")


if __name__ == "__main__":
    main()
