"""Writing node slots and reporting on them: what the switch pass (``switch``) and the
cluster pass (``cluster``) share.

Both give each cache node an IP target group of its own (a *node slot*) and apply a plan
slot by slot. What one pass wrote is recorded on its result whether or not a later call
fails, so the report says what the NLB holds, and a failed call is the pass's error, not an
exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from .errors import CacheBridgeError

if TYPE_CHECKING:
    from .nlb import TargetGroupInfo, TargetGroups
    from .switch_planner import Slot
    from .sync import BindingResult
    from .targets import Target

__all__ = ["SlotWrites", "guarded_pass", "slot_health", "writing_slots"]

R = TypeVar("R", bound="BindingResult")


def guarded_pass(r: R, layout: str, run: Callable[[], None]) -> R:
    """Run one binding's pass (``run`` fills ``r``) and return ``r``; never raises for AWS
    or source trouble, nor for a surprise: ``r`` says ``error``, and the other bindings run."""
    started = time.perf_counter()
    try:
        run()
    except CacheBridgeError as exc:
        r.status, r.error = "error", str(exc)
    except Exception as exc:  # one binding's surprise must not stop the others
        r.status, r.error = "error", f"unexpected error in {layout} binding {r.name}: {exc!r}"
    if r.status == "error" and not r.registered_after:
        r.registered_after = r.registered_before
    r.duration_ms = (time.perf_counter() - started) * 1000
    return r


class SlotWrites:
    """The registrations and deregistrations of one pass, with ``live`` (every target the
    node slots hold) kept in step with them."""

    def __init__(self, target_groups: TargetGroups, infos: Mapping[str, TargetGroupInfo], live: set[Target], *, outside_vpc: bool = False) -> None:
        self.target_groups = target_groups
        self.infos = infos
        self.live = live
        self.outside_vpc = outside_vpc
        self.registered: list[Target] = []
        self.deregistered: list[Target] = []

    def register(self, arn: str, targets: Sequence[Target]) -> None:
        self.target_groups.register(self.infos[arn], targets, outside_vpc=self.outside_vpc)
        self.registered.extend(targets)
        self.live.update(targets)

    def deregister(self, arn: str, targets: Sequence[Target]) -> None:
        self.target_groups.deregister(self.infos[arn], targets, outside_vpc=self.outside_vpc)
        self.deregistered.extend(targets)
        self.live.difference_update(targets)


@contextmanager
def writing_slots(
    r: BindingResult,
    writes: SlotWrites,
    failed: Callable[[CacheBridgeError], str] = str,
) -> Iterator[SlotWrites]:
    """Apply a plan inside this block: on leaving it ``r`` holds what was written, and its
    status is ``changed``, or ``error`` with ``failed(exc)`` when a write raised
    ``CacheBridgeError`` (which stops the block; the code after it still runs)."""
    try:
        yield writes
    except CacheBridgeError as exc:
        r.status, r.error = "error", failed(exc)
    else:
        r.status = "changed"
    finally:
        r.register = tuple(sorted(set(writes.registered)))
        r.deregister = tuple(sorted(set(writes.deregistered)))
        r.registered_after = tuple(sorted(writes.live))


def slot_health(slots: Iterable[Slot], arn: str | None, target: Target | None) -> str | None:
    """The health a node report shows for ``target`` in the slot ``arn``: its target health
    state, ``unused`` when the slot does not hold it, None when there is no slot or target."""
    if arn is None or target is None:
        return None
    slot = next(s for s in slots if s.arn == arn)
    state = slot.actual.get(target)
    return state.state.value if state is not None else "unused"
