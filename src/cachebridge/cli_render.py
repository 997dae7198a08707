"""What the command line prints: sync and status tables, stack progress and results,
cluster address maps and client snippets (rich on a terminal, plain text otherwise; one
JSON object with ``--json``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click

from .sync import SyncReport

__all__ = [
    "Progress",
    "make_console",
    "emit",
    "print_cluster_map",
    "print_notes",
    "print_notes_and_clients",
    "render_deploy",
    "render_deploy_error",
    "render_status",
    "render_sync",
]


def print_cluster_map(name: str, m: Any) -> None:
    where = f"{m.nlb_host}:{m.config_port}" if m.config_port else f"{m.nlb_host} (no configuration listener found)"
    click.echo(f"== {name}: cluster mode, configuration listener {where}")
    click.echo("Cluster clients connect to the configuration listener, then reach each node at the address the")
    click.echo("cluster announces, translated by this map (the cluster's own topology decides which node serves a key):")
    width = max((len(r.announced) for r in m.routes), default=0)
    for r in m.routes:
        click.echo(f"  {r.announced:<{width}}  ->  {r.nlb}   {r.node} ({r.health or '?'})")
    print_notes_and_clients(m.warnings, m.clients)


def print_notes_and_clients(warnings: Sequence[str], clients: Sequence[Any]) -> None:
    """An endpoint's or a cluster map's notes and client snippets, then a blank line."""
    for warning in warnings:
        click.echo(f"note: {warning}")
    for how in clients:
        click.echo(f"\n# {how.client}" + (f"  ({how.note})" if how.note else ""))
        click.echo(how.code)
    click.echo("")


_EVENT_STYLE = (("FAILED", "bold red"), ("ROLLBACK", "red"), ("SKIPPED", "yellow"), ("COMPLETE", "green"), ("IN_PROGRESS", "cyan"))


class Progress:
    """Stack events as they arrive: a live spinner with colored lines on a terminal, plain
    lines otherwise (on stderr with --json, so stdout stays one JSON object)."""

    def __init__(self, to_stderr: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=to_stderr, highlight=False, soft_wrap=True)
        self.live = self.console.is_terminal
        self._status: Any = None

    def __enter__(self) -> Progress:
        if self.live:
            self._status = self.console.status("starting")
            self._status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)
            self._status = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the spinner while a question is asked."""
        if self._status is None:
            yield
            return
        self._status.stop()
        try:
            yield
        finally:
            self._status.start()

    def step(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)
        else:
            self.console.print(f"-- {text}", markup=False)

    def event(self, event: Any) -> None:
        from rich.markup import escape

        when = event.timestamp.strftime("%H:%M:%S") if event.timestamp else "--:--:--"
        reason = f"  {event.reason}" if event.reason else ""
        if self.live:
            style = next((s for key, s in _EVENT_STYLE if key in event.status), "none")
            self.console.print(
                f"{when} [{style}]{event.status:<28}[/] {escape(event.logical_id)} [dim]{escape(event.resource_type)}[/]{escape(reason)}",
                markup=True,
            )
            self._status.update(f"{escape(event.logical_id)}: {event.status}")
        else:
            self.console.print(f"{when} {event.status} {event.logical_id} {event.resource_type}{reason}", markup=False)


def render_deploy(result: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = make_console()
    if result.action == "none":
        console.print(f"[green]stack {result.stack_name} is up to date: no changes, nothing done[/]")
    else:
        console.print(f"[green]stack {result.stack_name}: {result.status}[/]")
    if result.outputs:
        table = Table(title="outputs", title_justify="left")
        table.add_column("output")
        table.add_column("value", overflow="fold")
        for key, value in result.outputs.items():
            table.add_row(escape(key), escape(value))
        console.print(table)
    console.print(f"code: s3://{result.bucket}/{result.key} ({'uploaded' if result.uploaded else 'already there'})")
    if result.notification_topic_arn:
        console.print(f"notifications: {result.notifications} ({result.notification_topic_arn})")
    if result.sync is not None:
        sync = result.sync
        state = "[green]ok[/]" if sync.get("ok") else "[bold red]failed[/]"
        console.print(f"first sync ({sync.get('mode')}): {state}")
        for binding in ((sync.get("report") or {}).get("bindings") or []):
            after = ", ".join(binding.get("registered_after") or []) or "-"
            console.print(f"  {escape(str(binding.get('name')))}: {binding.get('status')}  registered: {after}")
            if binding.get("error"):
                console.print(f"  [red]error[/] {escape(binding['error'])}")
        if sync.get("error"):
            console.print(f"  [red]error[/] {escape(sync['error'])}")
        if sync.get("overrides"):
            console.print(f"  local run overrides: {escape(str(sync['overrides']))}")
    for note in result.notes:
        console.print(f"[yellow]note[/] {escape(note)}")
    console.print(f"how each client connects (and which TLS name it verifies): cachebridge endpoints --stack-name {escape(result.stack_name)}")


def render_deploy_error(exc: Any, as_json: bool) -> None:
    failures = list(getattr(exc, "failures", ()) or ())
    if as_json:
        payload = {
            "ok": False,
            "error": str(exc),
            "stack_status": getattr(exc, "stack_status", None),
            "failures": [f.to_json() if hasattr(f, "to_json") else str(f) for f in failures],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold red]Error:[/] {escape(str(exc))}", markup=True)
    for failure in failures:
        console.print(
            f"  [red]{escape(str(getattr(failure, 'logical_id', failure)))}[/] {escape(getattr(failure, 'resource_type', ''))} "
            f"{getattr(failure, 'status', '')}: {escape(getattr(failure, 'reason', ''))}",
            markup=True,
        )


def emit(report: SyncReport, as_json: bool, render: Callable[[SyncReport], None]) -> None:
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        render(report)


_STATUS_STYLE = {"in_sync": "green", "changed": "cyan", "dry_run": "yellow", "error": "bold red", "skipped": "red"}


def make_console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _text(value: Any) -> str:
    """User data (targets like [fd00::9]:6379, error messages) never read as markup."""
    from rich.markup import escape

    return escape(str(value))


def _targets(items: Any) -> str:
    return _text("\n".join(str(t) for t in items) or "-")


def render_sync(report: SyncReport) -> None:
    from rich.table import Table

    console = make_console()
    table = Table(title="cachebridge sync", title_justify="left")
    for column in ("binding", "status", "desired", "register", "deregister", "registered after", "ms"):
        table.add_column(column, overflow="fold")
    for b in report.bindings:
        style = _STATUS_STYLE.get(b.status, "")
        table.add_row(
            _text(b.name),
            f"[{style}]{b.status}[/]",
            _targets(b.desired),
            _targets(b.register),
            _targets(b.deregister),
            _targets(b.registered_after),
            f"{b.duration_ms:.0f}",
        )
    console.print(table)
    print_notes(console, report)


def render_status(report: SyncReport) -> None:
    from rich.table import Table

    console = make_console()
    table = Table(title="cachebridge status", title_justify="left")
    for column in ("binding", "source", "desired", "registered (health)", "drift"):
        table.add_column(column, overflow="fold")
    for b in report.bindings:
        registered = _text("\n".join(f"{t} ({state})" for t, state in b.health.items()) or "-")
        drift = "[red]error[/]" if b.status == "error" else (f"[yellow]{b.drift}[/]" if b.drift else "[green]0[/]")
        table.add_row(_text(b.name), _text(b.source), _targets(b.desired), registered, drift)
    console.print(table)
    print_notes(console, report)


def print_notes(console: Any, report: SyncReport) -> None:
    for b in report.bindings:
        if b.error:
            console.print(f"[bold red]error[/] {_text(b.name)}: {_text(b.error)}")
        for warning in b.warnings:
            console.print(f"[yellow]warning[/] {_text(b.name)}: {_text(warning)}")
