"""The pure planner: (desired, actual, limits) -> plan. No I/O, no clock, no logging.

The safety rules of cachebridge live here and only here:

1. A failed source (``desired is None``) or an empty answer plans nothing at all: a target
   group is never emptied because DNS or an API misbehaved.
2. New targets are registered before stale ones are deregistered, and identity is
   ``Target(ip, port)``. The adapter applies ``register`` first; see ``sync``.
3. At most ``max_changes`` registrations plus deregistrations per binding per run;
   registrations get the budget first, so a capped run deregisters only once every
   missing target is being registered.
4. Plans are deterministic (sorted tuples) and an applied plan is a no-op when re-planned.
5. Deregistering is only planned while at least one desired target stays or is added, so
   the group keeps something to route to even when the cap defers part of the change;
   one that stays must not be failing its health checks (healthy, initial, or a state that
   means "not checked"): the old primary is not removed in favour of a target that is
   down. (A failed register at apply time cancels the deregister; that rule is in
   ``writes``.)

Draining targets count as absent: they are already leaving, and if desired they are
registered again.

Before an answer reaches ``plan`` it is checked (``checks``: count, address kind and range)
and confirmed by a second read (``sync``); a refused answer is planned as a failed source
(rule 1). Rule 5 is what keeps a group non-empty between controllers once their writes
are serialised by the write lease (``lease``, applied in ``writes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .targets import Target, TargetHealth, TargetState

__all__ = ["Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    register: tuple[Target, ...]
    deregister: tuple[Target, ...]
    unchanged: tuple[Target, ...]
    deferred: tuple[Target, ...] = ()
    reasons: tuple[str, ...] = ()
    blocked: bool = False

    @property
    def changes(self) -> int:
        return len(self.register) + len(self.deregister)

    @property
    def empty(self) -> bool:
        return not self.register and not self.deregister

    @property
    def drift(self) -> int:
        """How many targets differ from the desired set before this plan is applied."""
        return self.changes + len(self.deferred)


def plan(
    desired: frozenset[Target] | None,
    actual: Mapping[Target, TargetHealth],
    *,
    max_changes: int,
) -> Plan:
    """Plan the registrations that make ``actual`` match ``desired``.

    ``desired`` is ``None`` when the source failed. ``actual`` maps every target the target
    group reports to its health.
    """
    if max_changes < 1:
        raise ValueError("max_changes must be at least 1")
    actual_live = frozenset(t for t, health in actual.items() if not health.draining)
    unchanged = tuple(sorted(actual_live & desired)) if desired else tuple(sorted(actual_live))

    if desired is None:
        return Plan((), (), unchanged, reasons=("source failed: nothing planned",), blocked=True)
    if not desired:
        return Plan((), (), unchanged, reasons=("source returned no address: nothing planned",), blocked=True)

    reasons: list[str] = []
    missing = sorted(desired - actual_live)
    stale = sorted(actual_live - desired)
    draining_wanted = sorted(t for t, h in actual.items() if h.draining and t in desired)
    if draining_wanted:
        reasons.append("re-register draining: " + ", ".join(map(str, draining_wanted)))

    register = tuple(missing[:max_changes])
    budget = max_changes - len(register)
    deregister = tuple(stale[:budget])
    deferred = tuple(sorted(missing[len(register):] + stale[len(deregister):]))

    # Rule 5: a desired target that stays and is not failing, or one being registered.
    standing = [t for t in unchanged if actual[t].state is not TargetState.UNHEALTHY]
    if deregister and not (standing or register):
        deferred = tuple(sorted(deferred + deregister))
        deregister = ()
        why = "every desired target left is failing its health checks" if unchanged else "no desired target would remain"
        reasons.append(f"deregister held back: {why}")
    if register:
        reasons.append("register: " + ", ".join(map(str, register)))
    if deregister:
        reasons.append("deregister: " + ", ".join(map(str, deregister)))
    if deferred:
        reasons.append(f"max_changes={max_changes} reached; deferred to the next run: " + ", ".join(map(str, deferred)))
    return Plan(register, deregister, unchanged, deferred, tuple(reasons))
