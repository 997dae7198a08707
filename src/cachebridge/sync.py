"""``sync``: the one reconcile pass that the CLI and the Lambda handler share.

For each binding: read the target group's details (cached), read the source, read the
group's live health, check the answer (``checks``), ``plan``, then apply the plan: register
first, deregister only if every register succeeded. Each binding ends with a
``BindingResult``; one failing binding never stops the others.

Every source is read before any target health: sources cost no ELB API token, and under
ELB's documented ``Describe*`` throttle a pass of many bindings cannot read every group's
health. Knowing what each group should hold, the pass reads first the groups whose source
changed, then those this process never read, then the least recently read, and once a
change is found it keeps back the time its confirming read and writes need
(``read_order``). Groups not read are reported ``skipped``, with nothing written.

On an ElastiCache event the source may not have changed yet (``FailoverComplete`` can
arrive before DNS or ``CurrentRole`` flips), so an event trigger re-reads the source
every ``poll_interval_s`` for up to ``event_wait_s`` until it differs from what is
registered, then applies.

Before a change is applied (any trigger), the source is read once more a poll interval
later and the two answers must agree: an answer that alternates between two addresses is
refused instead of flipping the group on every run. This costs one ``poll_interval_s``
(plus one source read) on every change, and nothing when nothing changes.

Applying (``writes.apply_plans``, after each round's reads, for the bindings of that
round with something to write) is guarded against other controllers writing the same
group: a group tagged ``cachebridge:owner`` by a deployed stack is written only by that
stack's controller (``controller_id``) unless forced (the tags of a round's groups to be
written are read again before its writes, 20 groups a call); with a lock table the writes happen
under a DynamoDB lease (``lease``, taken a chunk of bindings at a time) after a fresh read
of the group, or on this pass's first read when the lease record shows nobody can have
written since (``writes``), which is what makes "never empty" hold between controllers.

With a ``deadline`` (the Lambda's), a write is started only when the time left covers it
and the writes that must follow it at the configured timeouts (``aws.call_budget_s``);
otherwise the binding is reported ``skipped`` with nothing written.

Bindings are handled ``settings.max_concurrency`` at a time (``parallel.map_ordered``):
their target group details, their first source reads, their target health reads (in
``read_order``), then each round of source reads and writes. Results keep the
configuration's order, and one binding's exception is that binding's error only. Reads
shared between bindings (a replication group, target group details, a VPC) are made once
however many threads ask. The VPC's CIDRs are read only for a binding with something to
write (``_plan_and_apply``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .checks import check_answer
from .config import Binding, Config, Settings
from .errors import CacheBridgeError, PacingBudgetSpent
from .nlb import OWNER_TAG, Seen, TargetGroupInfo, TargetGroups, last_seen, read_first, risky_settings
from .parallel import Failure, map_ordered
from .pass_report import BindingResult, SyncReport, Trigger, select_bindings
from .planner import Plan, plan
from .read_order import ReadBudget, health_order, paced_rate, reads_per_pass
from .sources import Reading, Sources
from .targets import Target, TargetHealth
from .writes import apply_plans, nothing_written, record_plan, targets_text

__all__ = ["Trigger", "BindingResult", "SyncReport", "sync", "select_bindings"]

class _Work:
    """One binding in flight."""

    def __init__(self, binding: Binding) -> None:
        self.binding = binding
        self.result = BindingResult(binding.name, str(binding.source), binding.target_group, binding.port)
        self.started = time.perf_counter()
        self.info: TargetGroupInfo | None = None
        self.actual: dict[Target, TargetHealth] = {}
        self.desired: frozenset[Target] | None = None
        self.previous: frozenset[Target] | None = None  # the read before, for agreement
        self.confirm_by: float | None = None  # a change seen, waiting for a read that agrees
        self.reading: Reading | None = None
        self.source_error: str | None = None
        self.read_s: float | None = None  # how long the pass's first source read took (its clock)
        self.read_at: float | None = None  # wall clock when the pass's first read of the group began
        self.ready = False  # at the write step this round
        self.held_back = False  # its health read was held back for the changes found
        self.seen_before: Seen | None = None  # what this process remembered of the group before its read
        self.to_guard: Plan | None = None  # something to write, once its group's tags are read (``_guard_round``)

    @property
    def actual_live(self) -> frozenset[Target]:
        return frozenset(t for t, h in self.actual.items() if not h.draining)

    def finish(self) -> BindingResult:
        self.result.duration_ms = (time.perf_counter() - self.started) * 1000
        return self.result


@dataclass(frozen=True)
class _Context:
    """What every binding's apply step shares."""

    settings: Settings
    target_groups: TargetGroups
    dry_run: bool
    force: bool
    clock: Callable[[], float]
    deadline: float | None
    call_budget_s: float

    def covers(self, calls: int) -> bool:
        """Whether the time left covers ``calls`` more AWS calls at their worst."""
        return self.deadline is None or self.clock() + calls * self.call_budget_s <= self.deadline


def _default_call_budget() -> float:
    from .aws import call_budget_s  # boto3 is there in every runtime; tests may pass fakes

    return call_budget_s()


def sync(
    config: Config,
    *,
    target_groups: TargetGroups,
    sources: Sources,
    dry_run: bool = False,
    trigger: Trigger = Trigger(),
    bindings: Sequence[Binding] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    deadline: float | None = None,
    force: bool = False,
    call_budget_s: float | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> SyncReport:
    """Reconcile every binding (or ``bindings``) once.

    ``deadline`` is a ``clock()`` value by which the pass must be done: the event wait
    loop ends early enough to leave time for the writes, bindings not yet read are
    reported ``skipped``, and a write is only started when the time left covers it
    (``call_budget_s`` per AWS call, default ``aws.call_budget_s()``). ``force`` writes a
    group owned by another controller, or changed by one moments ago. ``wall_clock`` sets
    where the groups this process never read start (``read_order.rotation_offset``)."""
    settings = config.settings
    selected = tuple(bindings) if bindings is not None else select_bindings(config, trigger)
    if any(b.layout in ("switch", "cluster") for b in selected):
        from .cluster import sync_cluster  # its own pass; see cluster.py
        from .switch import sync_switch  # its own pass; see switch.py

        switched: dict[str, BindingResult] = {b.name: sync_switch(b, target_groups=target_groups, sources=sources, settings=settings, dry_run=dry_run, trigger=trigger, clock=clock, sleep=sleep, deadline=deadline, call_budget_s=(_default_call_budget() if call_budget_s is None else call_budget_s) if deadline is not None else 0.0, force=force) for b in selected if b.layout == "switch"}
        switched.update({b.name: sync_cluster(b, target_groups=target_groups, sources=sources, settings=settings, dry_run=dry_run) for b in selected if b.layout == "cluster"})
        report = sync(config, target_groups=target_groups, sources=sources, dry_run=dry_run, trigger=trigger, bindings=[b for b in selected if b.layout == "retarget"], clock=clock, sleep=sleep, deadline=deadline, force=force, call_budget_s=call_budget_s, wall_clock=wall_clock)
        retargeted = {b.name: b for b in report.bindings}
        return SyncReport([switched.get(b.name) or retargeted[b.name] for b in selected], trigger)
    works = [_Work(b) for b in selected]
    owners: dict[str, str] = {}
    ctx = _Context(
        settings, target_groups, dry_run, force, clock, deadline,
        _default_call_budget() if call_budget_s is None else call_budget_s,
    )

    limit = settings.max_concurrency
    started_at = clock()

    # Target group details first (cached across warm invocations; a new instance describes
    # them 20 a call).
    if deadline is None or clock() < deadline:
        target_groups.prefetch([w.binding.target_group for w in works], limit)
    _each(works, lambda w: _read_group_info(w, ctx), limit, "reading target group")
    for w in works:
        # A target group belongs to one binding: in configuration order, the first keeps it.
        if w.info is None or w.result.status in ("error", "skipped"):
            continue
        if w.info.arn in owners:
            w.result.status = "error"
            w.result.error = (
                f"target group {w.info.name} is also the target of binding {owners[w.info.arn]!r}; "
                "a target group belongs to one binding"
            )
            continue
        owners[w.info.arn] = w.binding.name

    # Sources next: they cost no ELB token, and this read is the first of the two that must
    # agree before a change is applied. Then target health, the most useful first, within
    # what the pass can pay for (``read_order``).
    readable = [w for w in works if w.result.status not in ("error", "skipped")]
    first_read_at = clock()
    if readable:
        sources.new_pass()
        sources.expect(w.binding.source for w in readable)  # many groups: listed in pages
        _each(readable, lambda w: _first_read(w, ctx, sources), limit, "reading source")
    budget = ReadBudget(
        deadline=deadline, call_budget_s=ctx.call_budget_s, poll_interval_s=settings.poll_interval_s,
        first_read_at=first_read_at, source_round_s=clock() - first_read_at,
        rate_per_s=paced_rate(), concurrency=limit, started_at=started_at,
        # An event's rounds re-read every binding it concerns; otherwise only the changed.
        source_read_s=None if trigger.wait_for_change else max((w.read_s or 0.0 for w in readable), default=0.0),
    )
    order = health_order(
        [w for w in readable if w.result.status not in ("error", "skipped")],
        lambda w: last_seen(target_groups, w.info.arn),  # type: ignore[union-attr]
        lambda w: w.desired if w.source_error is None else None,
        wall_s=wall_clock(), per_pass=reads_per_pass(deadline, clock()),
    )
    _each(order, lambda w: _read_group_health(w, ctx, budget), limit, "reading target group")
    for w in works:
        if w.info is not None and w.info.port and w.info.port != w.binding.port and w.result.status != "error":
            w.result.warnings.append(
                f"binding port {w.binding.port} differs from the target group's port {w.info.port}; "
                "targets are registered on the binding's port"
            )
        w.result.registered_before = tuple(sorted(w.actual_live))
        w.result.health = {str(t): h.state.value for t, h in sorted(w.actual.items())}
        if w.result.status in ("skipped", "error"):  # nothing written to it in this pass
            w.result.registered_after = w.result.registered_before

    pending = [w for w in works if w.result.status not in ("error", "skipped")]
    start = clock()
    wait_until = start + settings.event_wait_s if trigger.wait_for_change else start
    if deadline is not None:
        # Stop waiting while the time left still covers a register and a deregister.
        wait_until = min(wait_until, deadline - 2 * ctx.call_budget_s)

    # The sources were read once already; on an event, keep re-reading the unchanged ones
    # until the wait ends; a changed answer is read once more and applied only when the two
    # reads agree.
    first = True
    while pending:
        if not first:
            sources.new_pass()
            sources.expect(w.binding.source for w in pending)
        waiting = _each(pending, lambda w, read=not first: _step(w, ctx, sources, wait_until, read=read), limit, "syncing")
        _guard_round([w for w in pending if w.to_guard is not None], ctx, limit)
        ready = [w for w in pending if w.ready]
        if ready:
            apply_plans(ready, ctx, lambda ws, step: _each(ws, step, limit, "writing"))
        pending = [w for w, again in zip(pending, waiting) if again is True]
        pause = settings.poll_interval_s
        if first:
            # The target health reads took part of the interval (a clock that stepped back
            # took none: the pause is never longer than the interval).
            pause -= max(0.0, clock() - first_read_at)
        first = False
        if pending:
            # A change being confirmed waits for its next read whatever the event wait says.
            confirming = any(w.confirm_by is not None for w in pending)
            until = deadline if confirming else wait_until
            if until is not None and until <= clock():
                continue  # the next round applies whatever the source says now
            sleep(max(0.0, pause if until is None else min(pause, until - clock())))

    # The changes found are written: the time left reads the groups held back for them, to
    # verify them (a change found now is the next run's first read).
    held_back = [w for w in order if w.held_back]
    if held_back:
        _each(held_back, lambda w: _read_held_back(w, ctx), limit, "reading target group")

    return SyncReport([w.finish() for w in works], trigger)


def _each(works: Sequence[_Work], step: Callable[[_Work], Any], limit: int, doing: str) -> list[Any]:
    """``step`` over ``works``, ``limit`` at a time, in order; an exception that escapes a
    step ends that binding in error and no other."""
    outcomes = map_ordered(step, works, limit)
    for w, outcome in zip(works, outcomes):
        if isinstance(outcome, Failure):
            w.result.status = "error"
            w.result.error = f"unexpected error {doing} for binding {w.binding.name}: {outcome.error!r}"
            w.result.registered_after = w.result.registered_before
    return outcomes


def _read_group_info(w: _Work, ctx: _Context) -> None:
    # A call started before the deadline may run one call budget past it (the handler's
    # margin); so start this binding's reads only if all but the last fit before it:
    # attributes, tags, VPC CIDRs and health when not cached, health alone when cached.
    reads = 1 if ctx.target_groups.cached(w.binding.target_group) else 4
    if ctx.deadline is not None and ctx.clock() + (reads - 1) * ctx.call_budget_s >= ctx.deadline:
        _skip(w, "not reached before the deadline; nothing written, the next run syncs it")
        return
    try:
        # Attributes and tags (risky settings, owner, lock table) matter only before a
        # write: ``_guard_round`` reads them when there is one. A dry run (``status``)
        # shows the warnings, so it reads them now.
        w.info = ctx.target_groups.info(w.binding.target_group, vpc=False, details=ctx.dry_run)
        w.result.target_group_arn = w.info.arn
        w.result.warnings.extend(w.info.warnings)
        if w.info.details_known:
            w.result.warnings.extend(risky_settings(w.info))
    except CacheBridgeError as exc:
        w.result.status = "error"
        w.result.error = str(exc)
    except Exception as exc:  # one binding's surprise must not stop the others
        w.result.status = "error"
        w.result.error = f"unexpected error reading target group {w.binding.target_group}: {exc!r}"


def _first_read(w: _Work, ctx: _Context, sources: Sources) -> None:
    """The pass's first read of the binding's source, before its target group's health."""
    if ctx.deadline is not None and ctx.clock() >= ctx.deadline:
        _skip(w, "not reached before the deadline; nothing written, the next run syncs it")
        return
    started = ctx.clock()
    _read_source(w, sources)
    w.read_s = ctx.clock() - started
    w.result.polls += 1


def _read_group_health(w: _Work, ctx: _Context, budget: ReadBudget) -> None:
    assert w.info is not None
    # One call, which the handler's margin covers if it starts before the deadline.
    if ctx.deadline is not None and ctx.clock() >= ctx.deadline:
        _skip(w, _not_reached(w, "not reached before the deadline"))
        return
    if not budget.may_read(ctx.clock()):
        _skip(w, _not_reached(w, "not reached: the time left before the deadline is kept to apply the changes found"))
        w.held_back = True
        return
    try:
        w.seen_before = last_seen(ctx.target_groups, w.info.arn)
        w.read_at = time.time()
        started = time.monotonic()
        w.actual = ctx.target_groups.health(w.info.arn)
        budget.read_took(time.monotonic() - started)
    except PacingBudgetSpent as exc:
        _skip(w, str(exc))  # not made at all: nothing read, nothing written
        return
    except CacheBridgeError as exc:
        w.result.status = "error"
        w.result.error = str(exc)
        return
    except Exception as exc:
        w.result.status = "error"
        w.result.error = f"unexpected error reading target group {w.binding.target_group}: {exc!r}"
        return
    if w.source_error is None and w.desired is not None and w.desired != w.actual_live:
        locked = bool(ctx.settings.lock_table or (w.info.details_known and w.info.lock_table))
        found = budget.found_change(ctx.clock(), details_known=w.info.details_known, locked=locked)
        if not found and not locked and not w.info.details_known and budget.never_fits(details_known=False, locked=False):
            # Unread, the group's own lock table tag was taken as absent (a write of four
            # calls), and so no run would ever write it and read its tags: read them now.
            # Tagged with a lock table, the write is two calls under the lease.
            try:
                (fresh,) = ctx.target_groups.with_fresh_tags([w.info])
            except Exception:
                fresh = w.info
            if fresh.tags_error is None and fresh.lock_table:
                w.info, locked = fresh, True
                found = budget.found_change(ctx.clock(), details_known=fresh.details_known, locked=True)
        if not found:
            read_first(ctx.target_groups, w.info.arn, w.seen_before)
            never = budget.never_fits(details_known=w.info.details_known, locked=locked)
            if never is not None:
                # Not "the next run": every run like this one would say the same.
                nothing_written(w.result, "error", f"{targets_text(w.desired)} differs from what the group holds; {never}; nothing written")
                return
            _skip(w, (
                f"{targets_text(w.desired)} differs from what the group holds, found too late to confirm and "
                "write it before the deadline; nothing written, the next run reads this group first"
            ))


def _read_held_back(w: _Work, ctx: _Context) -> None:
    """After the writes: read a group held back for them, if the deadline allows. In sync,
    the binding is verified; changed, it stays ``skipped`` with nothing written (its
    group is then read first by the next run)."""
    if ctx.deadline is not None and ctx.clock() >= ctx.deadline:
        return
    assert w.info is not None
    try:
        w.seen_before = last_seen(ctx.target_groups, w.info.arn)
        w.read_at = time.time()
        actual = ctx.target_groups.health(w.info.arn)
    except CacheBridgeError:
        return  # nothing read: it stays as reported, skipped, with nothing written
    except Exception:
        return
    w.actual = actual
    r = w.result
    r.registered_before = r.registered_after = tuple(sorted(w.actual_live))
    r.health = {str(t): h.state.value for t, h in sorted(actual.items())}
    if w.source_error is not None or w.desired is None:
        return
    if w.desired != w.actual_live:
        read_first(ctx.target_groups, w.info.arn, w.seen_before)
        _skip(w, (
            f"{targets_text(w.desired)} differs from what the group holds, found too late to confirm and "
            "write it before the deadline; nothing written, the next run reads this group first"
        ))
        return
    r.status, r.error = "in_sync", None
    _plan_and_apply(w, ctx)
    if w.ready or w.to_guard is not None:  # a plan despite the same live targets: not this run's to write
        w.ready, w.to_guard = False, None
        _skip(w, "found too late to write before the deadline; nothing written, the next run reads this group first")


def _not_reached(w: _Work, why: str) -> str:
    # A source that failed is the news, whether or not its group was reached.
    failed = f" (its source failed: {w.source_error})" if w.source_error else ""
    return f"{why}{failed}; nothing written, the next run syncs it"


def _step(w: _Work, ctx: _Context, sources: Sources, wait_until: float, *, read: bool = True) -> bool:
    """One round for one binding: read its source (unless ``read`` is False: the pass's
    first read, made before the target health, stands), then apply, or wait for another
    round (returns True)."""
    settings = ctx.settings
    if read and ctx.deadline is not None and ctx.clock() >= ctx.deadline:
        # Out of time (a slow source ahead of it, or a change still unconfirmed):
        # leave it untouched and report it, rather than be cut off mid-write. (Without a
        # read, the round only plans from what was read: no call, nothing to cut off; a
        # change found is confirmed in a round that reads.)
        _skip(w, "not finished before the deadline; nothing written, the next run syncs it")
        return False
    if read:
        _read_source(w, sources)
        w.result.polls += 1
    changed = w.desired is not None and w.desired != w.actual_live
    now = ctx.clock()
    if changed and w.desired != w.previous:
        # A change not yet confirmed by a second read: read again a poll later.
        w.confirm_by = max(wait_until, now) + settings.poll_interval_s * 1.5 if w.confirm_by is None else w.confirm_by
        if now < w.confirm_by:
            w.previous = w.desired
            return True
        w.source_error = (
            f"{w.binding.source} did not give the same answer twice in a row "
            f"({targets_text(w.previous)} then {targets_text(w.desired)}); nothing applied"
        )
    w.previous = w.desired
    if changed or now >= wait_until:
        _plan_and_apply(w, ctx)
        return False
    return True


def _skip(w: _Work, why: str) -> None:
    w.result.status = "skipped"
    w.result.error = why
    w.result.registered_after = w.result.registered_before


def _read_source(w: _Work, sources: Sources) -> None:
    families = w.info.families if w.info is not None else (4, 6)
    try:
        reading = sources.read(w.binding.source, families)
    except CacheBridgeError as exc:
        w.desired, w.reading, w.source_error = None, None, str(exc)
        return
    except Exception as exc:  # a bug or an unexpected library error must not end the pass
        w.desired, w.reading, w.source_error = None, None, f"unexpected error reading {w.binding.source}: {exc!r}"
        return
    if reading.port is not None and reading.port != w.binding.port:
        # Registering the right address on the wrong port would replace a working target
        # with a dead one; refuse and say which port to configure.
        w.desired, w.reading = None, None
        w.source_error = (
            f"{reading.source} listens on port {reading.port} but binding {w.binding.name!r} registers port "
            f"{w.binding.port}; set port = {reading.port}"
        )
        return
    w.reading, w.source_error = reading, None
    w.desired = frozenset(Target(ip, w.binding.port) for ip in reading.addresses)


def _plan_and_apply(w: _Work, ctx: _Context) -> None:
    r = w.result
    settings = ctx.settings
    if w.source_error is None and w.desired and w.info is not None:
        vpc_cidrs, vpc_known = _vpc_for_check(w, ctx)
        check = check_answer(
            [t.ip for t in sorted(w.desired)],
            max_targets=w.binding.target_limit,
            vpc_cidrs=vpc_cidrs,
            vpc_known=vpc_known,
            allow_outside_vpc=w.binding.allow_outside_vpc,
            allowed_networks=settings.allowed_target_networks,
        )
        r.warnings.extend(check.warnings)
        if not check.ok:
            w.source_error = f"{w.binding.source}: answer refused: {check.error}"
    # A refused or failed answer plans nothing, as a failed source does (planner rule 1).
    p: Plan = plan(w.desired if w.source_error is None else None, w.actual, max_changes=settings.max_changes)
    record_plan(w, p)
    r.ttl = w.reading.ttl if w.reading else None
    if w.source_error is not None:
        r.status, r.error, r.source_error = "error", w.source_error, True
        r.registered_after = r.registered_before
        return
    if not ctx.dry_run and not p.empty and w.info is not None:
        # Something to write: the group's owner tag and lock table are read first, with
        # those of the round's other groups to be written, 20 a call (``_guard_round``).
        w.to_guard = p
        return
    _guard(w, ctx, p)


def _guard_round(works: Sequence[_Work], ctx: _Context, limit: int) -> None:
    """The tags of the groups a round is about to write, read again now (20 groups a
    DescribeTags call, ``TargetGroups.with_fresh_tags``; their attributes too on this
    instance's first write to them), then each binding's owner guard (``_guard``).

    Read on every pass that writes, not cached: a group another stack tagged after this
    instance first read it is refused from its next write on, and a lock table tagged
    since puts that write under the lease. A group whose tags could not be read is not
    written (``_guard``); the other groups of its call are read and guarded as usual."""
    if not works:
        return
    plans = {id(w): w.to_guard for w in works}
    for w in works:
        w.to_guard = None
    if ctx.deadline is not None and ctx.clock() >= ctx.deadline:
        for w in works:
            nothing_written(w.result, "skipped", "not finished before the deadline; nothing written, the next run syncs it")
        return
    try:
        fresh = ctx.target_groups.with_fresh_tags([w.info for w in works], limit)  # type: ignore[misc]
    except Exception as exc:  # a bug here must not write groups whose owner is unknown
        for w in works:
            nothing_written(w.result, "error", f"unexpected error reading the tags of target group {w.binding.target_group}: {exc!r}; nothing written")
        return
    for w, info in zip(works, fresh):
        before = set(w.info.warnings)  # type: ignore[union-attr]
        w.info = info
        w.result.warnings.extend(x for x in info.warnings if x not in before)
        if info.details_known:
            w.result.warnings.extend(x for x in risky_settings(info) if x not in w.result.warnings)
    _each(works, lambda w: _guard(w, ctx, plans[id(w)]), limit, "syncing")


def _guard(w: _Work, ctx: _Context, p: Plan) -> None:
    """What the group's owner and tags allow: written (``ready``), refused, or reported."""
    r = w.result
    settings = ctx.settings
    if not ctx.dry_run and not p.empty and w.info is not None and w.info.tags_error and not (ctx.force and settings.lock_table):
        # No tags is an answer; tags that could not be read are not: the owner and the lock
        # table they name decide whether and how this group may be written.
        nothing_written(r, "error", (
            f"target group {w.info.name}: {w.info.tags_error}; its owner and lock table decide whether and how it "
            "is written, so nothing is written this run (the next run reads them again)"
        ))
        return
    owner = w.info.owner if w.info is not None else None
    foreign = owner is not None and owner != settings.controller_id
    if foreign:
        r.warnings.append(
            f"target group {w.info.name if w.info else w.binding.target_group} is owned by stack {owner!r} "  # type: ignore[union-attr]
            f"(tag {OWNER_TAG}); its own controller keeps it in sync"
        )
    if p.deferred:
        r.warnings.append(f"{len(p.deferred)} change(s) over max_changes={settings.max_changes} deferred to the next run")
    if ctx.dry_run:
        r.status = "dry_run"
        r.registered_after = r.registered_before
        return
    if p.empty:
        r.status = "in_sync"
        r.registered_after = r.registered_before
        return
    if foreign and not ctx.force:
        nothing_written(r, "error", (
            f"target group {w.binding.target_group} is owned by stack {owner!r} (tag {OWNER_TAG}); "
            "nothing written: let that stack's controller sync it, or pass --force to write it anyway"
        ))
        return
    w.ready = True  # written with the round's other bindings (writes.apply_plans)


def _vpc_for_check(w: _Work, ctx: _Context) -> tuple[tuple[str, ...], bool]:
    """The CIDRs the answer's addresses are checked against (``checks`` rule 3).

    With something to write, the VPC's own (read now, once per VPC, cached). With nothing
    to write, the answer is exactly what the group already holds, which ELB accepted into
    this group's VPC when it was registered: the range rule has nothing left to guard, so
    the held addresses stand in for the CIDRs and no EC2 client or DescribeVpcs is needed.
    The count and address-kind rules apply either way; a write needs the CIDRs anyway, to
    mark addresses outside the VPC (``AvailabilityZone=all``).

    The VPC's CIDRs as ``deploy`` read them (``settings.vpc_cidrs``) serve when every
    address lies inside them: no EC2 client, no DescribeVpcs. An address outside them may
    be in a CIDR block associated since, so the VPC is read then, and the check uses what
    it holds now."""
    assert w.info is not None and w.desired is not None
    if w.info.vpc_known:
        return w.info.vpc_cidrs, True
    if plan(w.desired, w.actual, max_changes=ctx.settings.max_changes).empty:
        return tuple(f"{t.ip}/{32 if ':' not in t.ip else 128}" for t in w.desired), True
    known = ctx.settings.known_vpc_cidrs(w.info.vpc_id)
    if known:
        configured = replace(w.info, vpc_cidrs=known, vpc_known=True)
        if all(configured.in_vpc(t.ip) for t in w.desired):
            w.info = configured
            return known, True
    before = set(w.info.warnings)
    w.info = ctx.target_groups.with_vpc(w.info)
    w.result.warnings.extend(x for x in w.info.warnings if x not in before)
    return w.info.vpc_cidrs, w.info.vpc_known
