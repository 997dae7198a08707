"""Writing the plans of the bindings that reached the write step, guarded against other
controllers and the deadline.

``sync`` collects, each round, the bindings whose answer is checked, whose plan is not
empty and whose group's owner (if any) allows it, and hands them to ``apply_plans``. For
each binding, in order:

1. **Time.** With a deadline, nothing starts unless the time left covers a register and a
   deregister at their worst (``aws.call_budget_s`` each); otherwise ``skipped``.
2. **Lease.** With a lock table (``lock_table``, or the group's ``cachebridge:lock-table``
   tag) the writes happen under a DynamoDB lease (``lease``). The bindings of one round
   that share a table take their leases together, ``lease.BATCH`` at a time, right before
   that chunk is written (``Leases.acquire_many``: one transaction, one read of the
   records), and give them back together after it. One aged by the chunk before (no longer
   outliving a health read, a register and a deregister) is taken again under its holder
   id before the binding writes. A lease the batch could not take is
   taken alone as before: held elsewhere past ``LEASE_WAIT_S``: ``skipped``; table
   unavailable: register only, never deregister. Under the lease, another controller's
   change younger than ``CONFLICT_HOLD_S`` is not undone unless forced.
3. **Fresh read, unless nobody can have written.** The group's health is read again and
   the plan made again from it, except when all of these hold (``_first_read_stands``):

   a. the lease record says every earlier holder's writes ended (``Lease.written_until``:
      its release, or its expiry if it never released) more than ``CLOCK_SKEW_S`` before
      this pass's first read of the group began;
   b. that first read is young: taken in this pass, the write following the read that
      confirmed the answer (at most ``FRESH_POLLS`` source reads, so not after an event
      wait) and at most ``FRESH_READ_S`` ago;
   c. the plan made from it registers something.

   Why that is safe. The writers of a lease-guarded group are lease holders: a controller
   that knows the table writes only under the lease, and one that cannot reach it only
   registers (never deregisters). Leases are serialised, each holder's writes happen
   before its release or, if it stalls, before its expiry (``Lease.outlives``). So if (a)
   holds, nobody deregistered anything between the first read and now: every target that
   read showed live is still registered, and what the planner deregisters is only what
   that read showed. The planner registers the desired targets before deregistering and
   never deregisters when no desired target stays or is added; with (c) one is being
   added, so the target health states the read may have aged past (rule 5 looks at them
   only when nothing is registered) cannot change the outcome. A group that cannot be
   emptied by the first read's plan stays non-empty under it.

   What it assumes: clocks of controllers sharing a table within ``CLOCK_SKEW_S`` of each
   other (the lease itself assumes well under 18 s: ``LEASE_S`` minus a critical section's
   42 s), that a DescribeTargetHealth started after a write returned shows it (within the
   same allowance), and that nothing but cachebridge deregisters targets of a group it
   manages (a person doing so by hand meanwhile is seen at the next pass, as a target
   deregistered by hand between a re-read and the writes always was).
4. **Register, then deregister**; a failed register cancels the deregister.
5. **Without a lease** (no lock table known), the group is read again before
   deregistering and after: deregistration needs a desired target live in the fresh read,
   and a group found empty afterwards gets the desired targets back. That narrows the
   window between two unlocked controllers; it cannot close it (see ``lease``).

Every write started is in the binding's result: ``register``/``deregister`` list what was
done, ``registered_after`` what the group holds. One binding's lease (taken, refused or
lost) never decides another binding's writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import LeaseBusy, LeaseError, LeaseUnavailable
from .planner import Plan, plan
from .targets import Target, TargetState

if TYPE_CHECKING:
    from .lease import Lease, Leases
    from .pass_report import BindingResult, Status
    from .sync import _Context, _Work

__all__ = ["apply_plan", "apply_plans", "record_plan", "nothing_written", "targets_text", "CLOCK_SKEW_S", "FRESH_POLLS", "FRESH_READ_S"]


def _lease() -> Any:
    """The ``lease`` module, imported by the first write: a pass with nothing to write (a
    new instance's first pass, mostly) never loads it."""
    from . import lease

    return lease

# How far apart two controllers' clocks may be for a lease record's times to be compared
# with this controller's first read. Lambda and EC2 keep time with the Amazon Time Sync
# Service (well under a second apart); the lease already assumes under 18 s (``lease``).
# It also covers a DescribeTargetHealth that shows a write a moment late.
CLOCK_SKEW_S = 10.0
# A first read stands in for the re-read only if the write follows the read that
# confirmed the answer: a change seen at the first source read and confirmed at the
# second (an event pass that waited for the change has read the source more often).
FRESH_POLLS = 2
# ... and only if it is this young: a read of this run, never one an earlier scheduled run
# (a minute apart) could have made. A pass over 1,000 groups writes its last chunk tens of
# seconds after the pass's first read; what changes a group meanwhile is a lease holder,
# which the record shows whatever the age (the age bounds only what nobody should do: a
# target deregistered by hand).
FRESH_READ_S = 60.0


def targets_text(targets: frozenset[Target] | None) -> str:
    return ", ".join(map(str, sorted(targets))) if targets else "nothing"


def record_plan(w: "_Work", p: Plan) -> None:
    r = w.result
    r.desired = tuple(sorted(w.desired or ()))
    r.register, r.deregister, r.deferred, r.reasons = p.register, p.deregister, p.deferred, p.reasons
    r.drift = p.drift


@dataclass
class _Batch:
    """The leases of one chunk of bindings: taken together, given back together."""

    leases: Leases
    taken: dict[str, Lease]
    done: dict[str, tuple[Lease, list[str] | None]] = field(default_factory=dict)


def apply_plans(works: Sequence["_Work"], ctx: "_Context", each: Callable[[Sequence["_Work"], Callable[["_Work"], Any]], Any]) -> None:
    """Write the plans of ``works`` (one round's bindings at the write step); ``each`` runs
    a step over bindings as ``sync`` does (bounded, in order, isolated)."""
    alone: list[_Work] = []
    tables: dict[str, list[_Work]] = {}
    client: Any = None
    for w in works:
        assert w.info is not None
        table = ctx.settings.lock_table or w.info.lock_table
        if table and len(works) > 1 and (client := client or ctx.target_groups.dynamodb()) is not None:
            tables.setdefault(table, []).append(w)
        else:
            alone.append(w)
    if alone:
        each(alone, lambda w: apply_plan(w, ctx))
    controller = ctx.settings.controller_id or "manual"
    for table, group in tables.items():
        leases = _lease().Leases(client, table)
        batch_size = _lease().BATCH
        chunks = [group[start:start + batch_size] for start in range(0, len(group), batch_size)]
        _write_chunks(chunks, leases, controller, ctx, each)


def _write_chunks(chunks: Sequence[Sequence["_Work"]], leases: "Leases", controller: str, ctx: "_Context",
                  each: Callable[[Sequence["_Work"], Callable[["_Work"], Any]], Any]) -> None:
    """Write ``chunks`` (each at most ``lease.BATCH`` bindings of one lock table), each
    chunk under the leases taken for it together.

    The lease calls run beside the writes, on one thread of their own: a chunk's leases
    are taken while the chunk before it is written (so a lease is held one chunk's writes
    before its own, not the whole pass), and a chunk's go back as soon as the last of its
    bindings' writes has finished, while later chunks are written. The bindings run as one
    sequence through ``each`` (bounded, in order), so a chunk's first bindings start while
    the previous chunk's last ones finish instead of waiting for all of them. The deadline
    is checked per binding, as for one alone."""
    from concurrent.futures import ThreadPoolExecutor  # its thread module, for batches only

    chunk_of = {id(w): i for i, chunk in enumerate(chunks) for w in chunk}
    left = [len(chunk) for chunk in chunks]
    taking: dict[int, Future[_Batch]] = {}
    batches: dict[int, _Batch] = {}
    given_back: set[int] = set()
    released: list[Future[None]] = []
    lock = threading.Lock()

    def take(chunk: Sequence[_Work]) -> _Batch:
        keys = [w.info.arn for w in chunk if w.info is not None]
        return _Batch(leases, leases.acquire_many(keys, controller) if ctx.covers(2) else {})

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cachebridge-lease") as beside:

        def batch_of(i: int) -> _Batch:
            with lock:
                if i not in taking:
                    taking[i] = beside.submit(take, chunks[i])
                future = taking[i]
            try:
                batch = future.result()
            except Exception:  # acquire_many only raises on a bug; each takes its own
                batch = _Batch(leases, {})
            with lock:
                batch = batches.setdefault(i, batch)
                if i + 1 < len(chunks) and i + 1 not in taking:
                    taking[i + 1] = beside.submit(take, chunks[i + 1])
            return batch

        def give_back(i: int) -> None:
            # Called with the lock held, once every binding of chunk i is past its writes.
            if i in batches and i not in given_back:
                given_back.add(i)
                released.append(beside.submit(_release, chunks[i], batches[i]))

        def step(w: _Work) -> None:
            i = chunk_of[id(w)]
            try:
                apply_plan(w, ctx, batch_of(i))
            finally:
                with lock:
                    left[i] -= 1
                    if left[i] == 0:
                        give_back(i)

        taking[0] = beside.submit(take, chunks[0])
        try:
            each([w for chunk in chunks for w in chunk], step)
        finally:
            # Every binding's writes are over: anything taken and not yet given back goes
            # back now (a chunk whose bindings did not all run, only on a bug).
            with lock:
                for i in sorted(taking):
                    if i not in batches and taking[i].exception() is None:  # waits for a take under way
                        batches[i] = taking[i].result()
                    give_back(i)
                pending = list(released)
            for future in pending:
                future.exception()  # wait; _release reports its own failures


def _release(chunk: Sequence["_Work"], batch: _Batch) -> None:
    # A lease taken for a binding that never reached its writes goes back unrecorded.
    done = dict(batch.done)
    held = [done.get(key) or (lease, None) for key, lease in batch.taken.items()]
    held += [d for key, d in done.items() if key not in batch.taken]
    if not held:
        return
    try:
        problems = batch.leases.release_many(held)
    except Exception as exc:  # the leases lapse by themselves; the writes are done
        problems = {lease.key: repr(exc) for lease, _ in held}
    for w in chunk:
        if w.info is not None and w.info.arn in problems:
            w.result.warnings.append(f"releasing the write lease failed ({problems[w.info.arn]}); it lapses by itself")


def apply_plan(w: "_Work", ctx: "_Context", batch: _Batch | None = None) -> None:
    """Write one binding's plan, guarded against other controllers (module docstring);
    with ``batch``, its lease comes from (and goes back with) the batch."""
    r = w.result
    info = w.info
    assert info is not None and w.desired
    table = ctx.settings.lock_table or info.lock_table
    controller = ctx.settings.controller_id or "manual"
    lease: Lease | None = None
    leases: Leases | None = batch.leases if batch is not None else None
    register_only: str | None = None
    if not ctx.covers(2):
        nothing_written(r, "skipped", "not enough time left to register and deregister before the deadline; "
                        "nothing written, the next run syncs it")
        return
    if table and leases is None:
        client = ctx.target_groups.dynamodb()
        if client is None:
            register_only = f"lock table {table} is set but no DynamoDB client is configured"
        else:
            leases = _lease().Leases(client, table)
    if leases is not None:
        lease = batch.taken.get(info.arn) if batch is not None else None
        if lease is not None and not lease.outlives(3 * ctx.call_budget_s, time.monotonic()):
            # Taken ahead, while the chunk before was written, and aged by it: taken again
            # under the same holder id (passes only while it is still ours), so this binding
            # writes under a lease as long as one taken right before its writes.
            try:
                lease = leases.acquire(info.arn, controller, wait_s=0.0, holder=lease.holder)
            except LeaseBusy as exc:  # lapsed and taken by another holder
                nothing_written(r, "skipped", str(exc))
                return
            except LeaseUnavailable:
                pass  # the aged lease stands; the writes go ahead only if it outlives them
        if lease is None:
            try:
                lease = leases.acquire(info.arn, controller, wait_s=_lease_wait(ctx))
            except LeaseBusy as exc:
                nothing_written(r, "skipped", str(exc))
                return
            except LeaseUnavailable as exc:
                register_only = str(exc)
    wrote = False
    try:
        if lease is not None and leases is not None and not ctx.force:
            conflict = leases.conflict(lease, [str(t) for t in sorted(w.desired)])
            if conflict:
                nothing_written(r, "error", f"target group {info.name}: {conflict}")
                return
        wrote = _write(w, ctx, lease, register_only)
    finally:
        if lease is not None and leases is not None:
            record = [str(t) for t in sorted(w.desired)] if wrote else None
            if batch is not None:
                batch.done[info.arn] = (lease, record)
            else:
                try:
                    leases.release(lease, record)
                except LeaseError as exc:
                    r.warnings.append(f"releasing the write lease failed ({exc}); it lapses by itself")


def _lease_wait(ctx: "_Context") -> float:
    wait_s: float = _lease().LEASE_WAIT_S
    if ctx.deadline is None:
        return wait_s
    return max(0.0, min(wait_s, ctx.deadline - ctx.clock() - 2 * ctx.call_budget_s))


def nothing_written(r: "BindingResult", status: "Status", error: str) -> None:
    """End the binding ``status`` with ``error`` and no write: the group holds what it held."""
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

    p = plan(w.desired, w.actual, max_changes=ctx.settings.max_changes)
    if not (lease is not None and p.register and _first_read_stands(w, lease, time.time())):
        # The group as it is now, not as it was before a wait or before the lease.
        try:
            w.actual = groups.health(info.arn)
        except Exception as exc:
            nothing_written(r, "error", f"re-reading target group {info.name} before writing failed: {exc}")
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
    if not ctx.covers(calls):
        nothing_written(r, "skipped", "not enough time left to register and deregister before the deadline; "
                        "nothing written, the next run syncs it")
        r.registered_after = tuple(sorted(live))
        return False
    if lease is not None and not lease.outlives(calls * ctx.call_budget_s, time.monotonic()):
        nothing_written(r, "skipped", f"the write lease on target group {info.name} would lapse before the writes end "
                        "and could not be renewed; nothing written, the next run syncs it")
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


def _first_read_stands(w: "_Work", lease: Lease, now: float) -> bool:
    """Whether this pass's first read of the group can stand in for a re-read under
    ``lease`` (conditions a and b of the module docstring; c is the caller's)."""
    read_at = w.read_at
    if read_at is None or lease.written_until is None:
        return False
    nobody_since = lease.written_until < read_at - CLOCK_SKEW_S
    young = w.result.polls <= FRESH_POLLS and 0 <= now - read_at <= FRESH_READ_S
    return nobody_since and young


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
