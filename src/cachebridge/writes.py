"""Writing one binding's plan, guarded against other controllers and the deadline.

``sync`` calls ``apply_plan`` once a binding's answer is checked, its plan is not empty
and the group's owner (if any) allows it. In order:

1. **Time.** With a deadline, nothing starts unless the time left covers a register and a
   deregister at their worst (``aws.call_budget_s`` each); otherwise ``skipped``.
2. **Lease.** With a lock table (``lock_table``, or the group's ``cachebridge:lock-table``
   tag) the writes happen under a DynamoDB lease (``lease``). Held elsewhere past
   ``LEASE_WAIT_S``: ``skipped``. Table unavailable: register only, never deregister. Under
   the lease, another controller's change younger than ``CONFLICT_HOLD_S`` is not undone
   unless forced.
3. **Fresh read.** The group's health is read again and the plan made again from it: the
   snapshot may be ``event_wait_s`` old, or another controller may have written meanwhile.
4. **Register, then deregister**; a failed register cancels the deregister.
5. **Without a lease** (no lock table known), the group is read again before
   deregistering and after: deregistration needs a desired target live in the fresh read,
   and a group found empty afterwards gets the desired targets back. That narrows the
   window between two unlocked controllers; it cannot close it (see ``lease``).

Every write started is in the binding's result: ``register``/``deregister`` list what was
done, ``registered_after`` what the group holds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .errors import LeaseBusy, LeaseError, LeaseUnavailable
from .lease import LEASE_WAIT_S, Lease, Leases
from .planner import Plan, plan
from .targets import Target, TargetState

if TYPE_CHECKING:
    from .sync import BindingResult, Status, _Context, _Work

__all__ = ["apply_plan", "record_plan", "targets_text"]


def targets_text(targets: frozenset[Target] | None) -> str:
    return ", ".join(map(str, sorted(targets))) if targets else "nothing"


def record_plan(w: "_Work", p: Plan) -> None:
    r = w.result
    r.desired = tuple(sorted(w.desired or ()))
    r.register, r.deregister, r.deferred, r.reasons = p.register, p.deregister, p.deferred, p.reasons
    r.drift = p.drift


def apply_plan(w: "_Work", ctx: "_Context") -> None:
    """Write one binding's plan, guarded against other controllers (module docstring)."""
    r = w.result
    info = w.info
    assert info is not None and w.desired
    table = ctx.settings.lock_table or info.lock_table
    controller = ctx.settings.controller_id or "manual"
    lease: Lease | None = None
    leases: Leases | None = None
    register_only: str | None = None
    if not ctx.covers(2):
        _nothing_written(r, "skipped", "not enough time left to register and deregister before the deadline; "
                         "nothing written, the next run syncs it")
        return
    if table:
        client = ctx.target_groups.dynamodb()
        if client is None:
            register_only = f"lock table {table} is set but no DynamoDB client is configured"
        else:
            leases = Leases(client, table)
            try:
                lease = leases.acquire(info.arn, controller, wait_s=_lease_wait(ctx))
            except LeaseBusy as exc:
                _nothing_written(r, "skipped", str(exc))
                return
            except LeaseUnavailable as exc:
                register_only = str(exc)
    wrote = False
    try:
        if lease is not None and leases is not None and not ctx.force:
            conflict = leases.conflict(lease, [str(t) for t in sorted(w.desired)])
            if conflict:
                _nothing_written(r, "error", f"target group {info.name}: {conflict}")
                return
        wrote = _write(w, ctx, lease, register_only)
    finally:
        if lease is not None and leases is not None:
            try:
                leases.release(lease, [str(t) for t in sorted(w.desired)] if wrote else None)
            except LeaseError as exc:
                r.warnings.append(f"releasing the write lease failed ({exc}); it lapses by itself")


def _lease_wait(ctx: "_Context") -> float:
    if ctx.deadline is None:
        return LEASE_WAIT_S
    return max(0.0, min(LEASE_WAIT_S, ctx.deadline - ctx.clock() - 2 * ctx.call_budget_s))


def _nothing_written(r: "BindingResult", status: "Status", error: str) -> None:
    r.status, r.error = status, error
    r.register, r.deregister = (), ()
    r.registered_after = r.registered_before


def _write(w: "_Work", ctx: "_Context", lease: Lease | None, register_only: str | None) -> bool:
    """Register, then deregister; returns whether anything was written."""
    r = w.result
    info = w.info
    assert info is not None and w.desired is not None
    groups = ctx.target_groups
    outside = w.binding.allow_outside_vpc or bool(ctx.settings.allowed_target_networks)

    # The group as it is now, not as it was before a wait or before the lease.
    try:
        w.actual = groups.health(info.arn)
    except Exception as exc:
        _nothing_written(r, "error", f"re-reading target group {info.name} before writing failed: {exc}")
        return False
    p = plan(w.desired, w.actual, max_changes=ctx.settings.max_changes)
    record_plan(w, p)
    live = set(w.actual_live)
    if p.empty:
        r.status = "in_sync"
        r.registered_after = tuple(sorted(live))
        return False

    unlocked = lease is None and register_only is None
    calls = (1 if p.register else 0) + (0 if register_only else (1 if p.deregister else 0))
    calls += 2 if unlocked and p.deregister else 0  # the reads around an unlocked deregister
    if not ctx.covers(calls) or (lease is not None and not lease.outlives(calls * ctx.call_budget_s, time.monotonic())):
        _nothing_written(r, "skipped", "not enough time left to register and deregister before the deadline; "
                         "nothing written, the next run syncs it")
        r.registered_after = tuple(sorted(live))
        return False

    try:
        if p.register:
            groups.register(info, p.register, outside_vpc=outside)
            live.update(p.register)
    except Exception as exc:
        # Rule 5: a failed register means no deregister in this run. ``register`` and
        # ``deregister`` report what was done, so neither lists anything here.
        planned = ", ".join(map(str, p.register))
        r.status, r.error = "error", f"registering {planned} failed: {exc} (nothing deregistered)"
        r.register, r.deregister = (), ()
        r.registered_after = tuple(sorted(live))
        return False
    wrote = bool(p.register)
    if not p.deregister:
        r.status = "changed"
        r.registered_after = tuple(sorted(live))
        return wrote
    if register_only is not None:
        r.status = "error"
        r.error = f"{register_only}; registered only, deregistration held back: {', '.join(map(str, p.deregister))}"
        r.deferred = tuple(sorted(set(r.deferred) | set(p.deregister)))
        r.deregister = ()
        r.registered_after = tuple(sorted(live))
        return wrote

    stale = p.deregister
    if unlocked:
        stale = _still_safe_to_deregister(w, ctx, stale)
        if stale is None:
            r.deregister = ()
            r.registered_after = tuple(sorted(live))
            return wrote
    try:
        groups.deregister(info, stale, outside_vpc=outside)
        live.difference_update(stale)
    except Exception as exc:
        planned = ", ".join(map(str, stale))
        r.status, r.error = "error", f"deregistering {planned} failed: {exc}"
        r.deregister = ()
        r.registered_after = tuple(sorted(live))
        return wrote
    r.deregister = tuple(stale)
    r.status = "changed"
    r.registered_after = tuple(sorted(live))
    if unlocked:
        _restore_if_emptied(w, ctx, outside)
    return True


def _still_safe_to_deregister(w: "_Work", ctx: "_Context", stale: tuple[Target, ...]) -> tuple[Target, ...] | None:
    """Without a lease: read the group again; deregister only targets still live there,
    and only while one of this binding's desired targets is live too."""
    r = w.result
    assert w.info is not None and w.desired is not None
    try:
        fresh = ctx.target_groups.health(w.info.arn)
    except Exception as exc:
        r.status, r.error = "error", f"re-reading target group {w.info.name} before deregistering failed: {exc} (nothing deregistered)"
        return None
    fresh_live = {t for t, h in fresh.items() if not h.draining}
    if not {t for t in fresh_live & w.desired if fresh[t].state is not TargetState.UNHEALTHY}:
        r.status = "error"
        r.error = (
            f"target group {w.info.name} no longer holds a healthy or initial desired target "
            f"({targets_text(w.desired)}) after registering it (another controller is writing it); nothing deregistered"
        )
        return None
    return tuple(t for t in stale if t in fresh_live)


def _restore_if_emptied(w: "_Work", ctx: "_Context", outside: bool) -> None:
    r = w.result
    assert w.info is not None and w.desired is not None
    try:
        after = ctx.target_groups.health(w.info.arn)
    except Exception as exc:
        r.warnings.append(f"reading target group {w.info.name} after writing failed: {exc}")
        return
    if any(not h.draining for h in after.values()):
        return
    restore = tuple(sorted(w.desired))
    try:
        ctx.target_groups.register(w.info, restore, outside_vpc=outside)
    except Exception as exc:
        r.status, r.error = "error", f"target group {w.info.name} was left empty by a concurrent writer and re-registering {targets_text(w.desired)} failed: {exc}"
        r.registered_after = ()
        return
    r.status = "error"
    r.error = (
        f"target group {w.info.name} was found empty after deregistering (another controller wrote it at the "
        f"same time); re-registered {targets_text(w.desired)}. Configure a lock table to prevent this"
    )
    r.register = tuple(sorted(set(r.register) | set(restore)))
    r.registered_after = restore
