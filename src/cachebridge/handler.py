"""The Lambda entry point: parse the event, wire the adapters, call ``sync()``, render.

- EventBridge schedule: sync every binding; returns a short summary.
- SNS notification from ElastiCache: a topology event (see ``events.TOPOLOGY_EVENTS``)
  syncs the bindings that follow the named group, re-reading the source for up to
  ``event_wait_s`` until it changes; other ElastiCache events are acknowledged and ignored,
  and so is a message on a shared topic that is not an ElastiCache notification (logged
  as a warning, never a failed invocation).
- Direct invoke: ``{"action": "sync", "dry_run": bool}`` or ``{"action": "status"}``
  returns the whole report.

The pass ends before the function's deadline: a binding that cannot be finished in the
time left is reported ``skipped`` with nothing written, never left half-applied.

Each binding gives one JSON log line and one EMF metrics line. A malformed event is logged
and rejected with ``EventError`` before anything is read. When a binding ends in error the
handler raises ``SyncFailed`` after every binding was handled and reported, so Lambda's
``Errors`` metric counts it and asynchronous events (SNS, schedule) are retried; ``status``
only reports. A binding ``skipped`` (not reached in the time or ELB read budget left) fails
an SNS event or a direct invoke too, but not a scheduled run: the schedule is its own retry,
a Lambda retry of a scheduled run would spend the same ELB tokens a minute early, and with
more bindings than one paced pass can read every scheduled run skips some. The ``Skipped``
metric, and the stack's alarm on it, show a binding left unchecked for long.

The configuration (``CACHEBRIDGE_BINDINGS``, more bindings from ``CACHEBRIDGE_EXTRA_BINDINGS``
or the file in the zip ``CACHEBRIDGE_CONFIG_FILE`` names, ``CACHEBRIDGE_*``) and the adapters
with their boto3 clients are kept between warm invocations; ``clear_caches()`` drops them.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from . import aws, logs, metrics, nlb, pacing
from .config import ENV_BINDINGS, Config, Settings
from .errors import ConfigError, EventError, SyncFailed
from .events import ParsedEvent, parse_event
from .nlb import TargetGroups
from .sources import Sources
from .sync import BindingResult, SyncReport, sync

__all__ = ["handler", "clear_caches", "DEADLINE_MARGIN_S"]

# ``sync`` must be done this long before Lambda's timeout: one AWS call started just
# before its deadline may run to its worst case (``aws.call_budget_s``), then the report is
# logged and the metrics emitted. Writes need nothing more here: ``sync`` starts a register
# only when the time left covers it and its deregister at their worst, and ends the event
# wait early enough for that.
REPORT_MARGIN_S = 1.0
DEADLINE_MARGIN_S = REPORT_MARGIN_S + aws.call_budget_s()

_lock = threading.Lock()
_config_cache: tuple[tuple[tuple[str, str], ...], Config] | None = None
_adapter_cache: dict[tuple[Any, ...], tuple[TargetGroups, Sources]] = {}


def clear_caches() -> None:
    """Forget the cached configuration, adapters, boto3 clients and target group details."""
    global _config_cache
    with _lock:
        _config_cache = None
        _adapter_cache.clear()
    nlb.clear_caches()
    aws.clear_caches()


def _env_key() -> tuple[tuple[str, str], ...]:
    return tuple(sorted(
        (k, v) for k, v in os.environ.items()
        if k.startswith("CACHEBRIDGE_") or k in ("AWS_REGION", "AWS_DEFAULT_REGION")
    ))


def _config() -> Config:
    """``Config.from_env()``, read again only when the environment it depends on changes."""
    global _config_cache
    key = _env_key()
    with _lock:
        if _config_cache is not None and _config_cache[0] == key:
            return _config_cache[1]
    config = Config.from_env()
    with _lock:
        _config_cache = (key, config)
    return config


def _adapters(settings: Settings) -> tuple[TargetGroups, Sources]:
    key = (settings.region, settings.nameservers, settings.dns_timeout_s)
    with _lock:
        cached = _adapter_cache.get(key)
        if cached is None:
            cached = _adapter_cache[key] = aws.adapters(settings)
        return cached


def _deadline(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    margin = REPORT_MARGIN_S + aws.call_budget_s()  # the clients' policy as it is now
    return time.monotonic() + max(0.0, remaining() / 1000.0 - margin)


def handler(event: Any, context: Any) -> dict[str, Any]:
    log = logs.setup()
    function_name = getattr(context, "function_name", None) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    request_id = getattr(context, "aws_request_id", None)
    logs.clear_keys()
    logs.append_keys(request_id=request_id, function_name=function_name)

    try:
        parsed = parse_event(event)
    except EventError as exc:
        log.error("event rejected", extra={"error": str(exc), "event_type": type(event).__name__})
        raise

    if parsed.foreign:
        # Someone else's message on a shared topic: worth a look, never a failed invocation.
        log.warning("SNS message ignored: not an ElastiCache notification", extra={"messages": list(parsed.foreign)})
    if parsed.ignored:
        log.info("event ignored", extra={"events": list(parsed.event_names), "reason": parsed.reason})
        return {"ok": True, "ignored": True, "events": list(parsed.event_names), "reason": parsed.reason}

    try:
        config = _config()
    except ConfigError as exc:
        log.error("configuration rejected", extra={"error": str(exc), "field": exc.field, "variable": ENV_BINDINGS})
        raise
    target_groups, sources = _adapters(config.settings)
    trigger = parsed.trigger
    assert trigger is not None
    deadline = _deadline(context)
    # Paced ELB reads (``pacing``) never wait past the pass's deadline either.
    with pacing.pass_deadline(deadline):
        report = sync(
            config,
            target_groups=target_groups,
            sources=sources,
            dry_run=parsed.dry_run,
            trigger=trigger,
            deadline=deadline,
        )

    _log_report(log, parsed, report)
    metrics.emit_report(
        report,
        function_name=function_name,
        metadata={"Trigger": trigger.kind, "Event": trigger.event, "DryRun": parsed.dry_run, "RequestId": request_id},
    )

    failed = _failed(report, parsed)
    if failed:
        details = "; ".join(f"{b.name}: {b.error or b.status}" for b in failed)
        raise SyncFailed(
            f"{len(failed)} of {len(report.bindings)} binding(s) failed: {details}",
            tuple(b.name for b in failed),
            report,
        )
    if parsed.direct:
        return {"ok": report.ok, "action": parsed.action, "dry_run": parsed.dry_run, **report.to_json()}
    return _summary(report)


def _failed(report: SyncReport, parsed: ParsedEvent) -> list[BindingResult]:
    """The bindings that fail the invocation (see the module's notes)."""
    if not parsed.raise_on_failure:
        return []
    scheduled = parsed.trigger is not None and parsed.trigger.kind == "schedule"
    return [b for b in report.failed if not (scheduled and b.status == "skipped")]


def _log_report(log: Any, parsed: ParsedEvent, report: SyncReport) -> None:
    trigger = report.trigger
    if not report.bindings:
        log.info(
            "no binding follows this event",
            extra={"trigger": trigger.kind, "event": trigger.event, "replication_group": trigger.replication_group},
        )
    for result in report.bindings:
        level = "error" if result.status == "error" else "warning" if result.warnings or result.status == "skipped" else "info"
        getattr(log, level)(_message(result), extra=_binding_fields(result, parsed))


def _message(result: BindingResult) -> str:
    return {
        "in_sync": "binding in sync",
        "changed": "binding synced",
        "dry_run": "binding planned (dry run)",
        "error": "binding failed",
        "skipped": "binding skipped",
    }.get(result.status, f"binding {result.status}")


def _binding_fields(result: BindingResult, parsed: ParsedEvent) -> dict[str, Any]:
    # The binding's entry in the report, less what only the report carries, with the
    # trigger and the poll count.
    entry = result.to_json()
    trigger = parsed.trigger
    return {
        "binding": result.name,
        **{key: entry[key] for key in ("status", "source", "target_group", "port")},
        "trigger": trigger.kind if trigger else None,
        "event": trigger.event if trigger else None,
        "dry_run": parsed.dry_run,
        **{key: entry[key] for key in ("desired", "registered_before", "register", "deregister", "deferred", "drift")},
        "polls": result.polls,
        **{key: entry[key] for key in ("duration_ms", "error", "warnings")},
    }


def _summary(report: SyncReport) -> dict[str, Any]:
    trigger = report.trigger
    return {
        "ok": report.ok,
        "trigger": trigger.kind,
        "event": trigger.event,
        "replication_group": trigger.replication_group,
        "bindings": {b.name: b.status for b in report.bindings},
        "changes": sum(b.changes for b in report.bindings),
    }
