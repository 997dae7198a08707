"""Bounded concurrency for one sync pass: a small worker pool and one-read-per-key caches.

At a real API latency (10-50 ms a call) a pass that reads 1,000 target groups one after
another outlasts the function's timeout; a few calls in flight at once bring it back under.
Two pieces, both free of AWS and DNS so ``sync``, ``sources`` and ``nlb`` share them:

- ``map_ordered(fn, items, limit)``: ``fn`` over ``items`` with at most ``limit`` calls in
  flight, results in the order of ``items`` whatever order they finish in. An exception
  ``fn`` raises is returned as that item's result (an ``Failure``), never raised into the
  others: one binding's surprise must not cost another its run.
- ``OncePerKey``: concurrent callers asking for the same key share one read (the first
  caller reads, the others wait for its answer, error included). A replication group two
  bindings follow is described once per pass even when both read it at the same moment.

No retry lives here: botocore's policy (``aws.BOTO_CONFIG``) is the only one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Failure", "map_ordered", "OncePerKey"]

_T = TypeVar("_T")
_R = TypeVar("_R")
_K = TypeVar("_K", bound=Hashable)


@dataclass(frozen=True)
class Failure:
    """What ``fn`` raised for one item."""

    error: BaseException


def map_ordered(fn: Callable[[_T], _R], items: Sequence[_T], limit: int) -> list[_R | Failure]:
    """``[fn(item) for item in items]`` with at most ``limit`` calls at once; an exception
    becomes that item's ``Failure``. One item, or ``limit`` 1, runs in the caller's thread."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")

    def guarded(item: _T) -> _R | Failure:
        try:
            return fn(item)
        except Exception as exc:
            return Failure(exc)

    if limit == 1 or len(items) <= 1:
        return [guarded(item) for item in items]
    # Each worker takes the next index and writes its result in place; the caller waits
    # for the workers alone. An executor's map makes a future per item and wakes the caller
    # for each result in turn: at 1,000 bindings that bookkeeping was an eighth of the
    # controller's CPU in a pass bound by CPU (benchmarks/pass_profile.py).
    results: list[_R | Failure | None] = [None] * len(items)
    indices = iter(range(len(items)))
    take = threading.Lock()
    escaped: list[BaseException] = []

    def work() -> None:
        try:
            while True:
                with take:
                    i = next(indices, None)
                if i is None:
                    return
                results[i] = guarded(items[i])
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: raised in the caller
            escaped.append(exc)

    workers = [
        threading.Thread(target=work, name=f"cachebridge_{n}", daemon=True) for n in range(min(limit, len(items)))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if escaped:
        raise escaped[0]
    return results  # type: ignore[return-value]  # every index was written


class OncePerKey(Generic[_K, _T]):
    """A cache where one read per key happens however many threads ask at once.

    A read that raised is remembered too (until ``clear``): asking again in the same pass
    would repeat the wait and could give two bindings two different answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[_K, Future[_T]] = {}

    def get(self, key: _K, read: Callable[[], _T]) -> _T:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(read())
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()

    def clear(self) -> None:
        with self._lock:
            self._futures.clear()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._futures
