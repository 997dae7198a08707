"""``deploy.local.LocalFunction``: the environment, context and serialisation of local runs."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from cachebridge import handler as controller
from cachebridge.deploy.local import LocalFunction

CONFIGURATION = {
    "FunctionName": "cachebridge-orders-Controller",
    "Timeout": 30,
    "Environment": {"Variables": {"CACHEBRIDGE_BINDINGS": '{"bindings": []}'}},
}


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, str], Any]]:
    """Each call of the handler: the environment it saw and its context."""
    calls: list[tuple[dict[str, str], Any]] = []

    def handler(event: Any, context: Any) -> dict[str, Any]:
        calls.append((dict(os.environ), context))
        if event == "raise":
            raise RuntimeError("handler failed")
        return {"ok": True, "event": event}

    monkeypatch.setattr(controller, "handler", handler)
    return calls


def test_the_handler_sees_the_functions_environment_and_the_overrides(seen, monkeypatch):
    monkeypatch.setenv("CACHEBRIDGE_MAX_CHANGES", "9")  # the caller's, not the function's
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "caller")
    function = LocalFunction(CONFIGURATION, {"CACHEBRIDGE_NAMESERVERS": "127.0.0.1:5353"})

    assert function.invoke({"action": "sync"}) == {"ok": True, "event": {"action": "sync"}}

    ((environment, context),) = seen
    assert {k: v for k, v in environment.items() if k.startswith("CACHEBRIDGE_")} == {
        "CACHEBRIDGE_BINDINGS": '{"bindings": []}',
        "CACHEBRIDGE_NAMESERVERS": "127.0.0.1:5353",
    }
    assert environment["AWS_ACCESS_KEY_ID"] == "caller"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "cachebridge-orders-Controller"
    assert context.function_name == "cachebridge-orders-Controller"
    assert context.aws_request_id.startswith("local-")
    assert 29_000 < context.get_remaining_time_in_millis() <= 30_000


@pytest.mark.parametrize("event", ["ok", "raise"])
def test_the_environment_is_restored_after_each_invocation(seen, monkeypatch, event):
    monkeypatch.setenv("CACHEBRIDGE_MAX_CHANGES", "9")
    before = dict(os.environ)
    function = LocalFunction(CONFIGURATION)

    if event == "raise":
        with pytest.raises(RuntimeError, match="handler failed"):
            function.invoke(event)
    else:
        function.invoke(event)

    assert dict(os.environ) == before


def test_invocations_run_one_at_a_time(monkeypatch):
    running: list[int] = []
    overlaps: list[int] = []

    def handler(event: Any, context: Any) -> None:
        running.append(event)
        overlaps.append(len(running))
        time.sleep(0.02)
        running.remove(event)

    monkeypatch.setattr(controller, "handler", handler)
    functions = [LocalFunction(CONFIGURATION), LocalFunction(CONFIGURATION)]
    threads = [threading.Thread(target=functions[i % 2].invoke, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert overlaps == [1] * 6


def test_on_start_runs_inside_the_invocation(seen):
    order: list[str] = []
    LocalFunction(CONFIGURATION).invoke("ok", on_start=lambda: order.append(os.environ["AWS_LAMBDA_FUNCTION_NAME"]))

    assert order == ["cachebridge-orders-Controller"]
    assert len(seen) == 1
