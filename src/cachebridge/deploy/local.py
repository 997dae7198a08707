"""Run a deployed controller function in this process, as Lambda would run it.

moto cannot invoke a Lambda function without Docker, so ``cachebridge deploy --invoke
local`` and the sandbox call ``cachebridge.handler.handler`` here instead, with what the
function's configuration says: its environment variables, its name and its timeout.

The handler reads its settings from ``os.environ``, which is process-wide, so invocations
run one at a time here (on Lambda each invocation has an environment of its own) and
each restores the environment it found. Only for local runs: the Lambda zip leaves ``deploy/``
out.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["LocalContext", "LocalFunction"]

DEFAULT_TIMEOUT_S = 60.0

# One lock for the process, not one per function: two functions would still share
# os.environ.
_invocation_lock = threading.Lock()


class LocalContext:
    """The parts of a Lambda context the handler reads."""

    def __init__(self, function_name: str, timeout_s: float) -> None:
        self.function_name = function_name
        self.aws_request_id = f"local-{uuid.uuid4()}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    """A deployed function's handler, run in this process.

    ``configuration`` is a GetFunctionConfiguration response (``Environment``,
    ``FunctionName``, ``Timeout`` are read); ``overrides`` are variables set on top of the
    function's own. With ``cold_start`` the handler's caches are dropped before and after
    each invocation, so nothing built from another environment is reused. ``code`` is the
    function's zip: it is unpacked and ``LAMBDA_TASK_ROOT`` points there, as on Lambda, so
    files it ships (a config file) are read from it.
    """

    def __init__(
        self,
        configuration: Mapping[str, Any],
        overrides: Mapping[str, str] | None = None,
        *,
        cold_start: bool = False,
        code: bytes | None = None,
    ) -> None:
        self.function_name: str = configuration.get("FunctionName") or ""
        self.timeout_s = float(configuration.get("Timeout") or DEFAULT_TIMEOUT_S)
        self.variables: dict[str, str] = dict((configuration.get("Environment") or {}).get("Variables") or {})
        self.overrides: dict[str, str] = dict(overrides or {})
        self.cold_start = cold_start
        self.code = code

    def environment(self) -> dict[str, str]:
        """What the handler sees: this process's environment without cachebridge's own
        settings (its credentials and endpoint stand in for the function's role), the
        function's variables, what Lambda sets itself, then the overrides."""
        variables = {k: v for k, v in os.environ.items() if not k.startswith("CACHEBRIDGE_")}
        variables.update(self.variables)
        variables["AWS_LAMBDA_FUNCTION_NAME"] = self.function_name
        variables.update(self.overrides)
        return variables

    def invoke(self, event: Any, *, on_start: Callable[[], None] | None = None) -> Any:
        """The handler's result for ``event``; its exception if it raises. ``on_start`` is
        called when the invocation starts, after any wait for the one before it."""
        from .. import handler as controller

        with _invocation_lock, contextlib.ExitStack() as stack:
            variables = self.environment()
            if self.code is not None:
                root = stack.enter_context(tempfile.TemporaryDirectory(prefix="cachebridge-task-"))
                with zipfile.ZipFile(io.BytesIO(self.code)) as archive:
                    archive.extractall(root)
                variables["LAMBDA_TASK_ROOT"] = root
            saved = dict(os.environ)
            _set_environ(variables)
            try:
                if self.cold_start:
                    controller.clear_caches()
                if on_start is not None:
                    on_start()
                return controller.handler(event, LocalContext(self.function_name, self.timeout_s))
            finally:
                if self.cold_start:
                    controller.clear_caches()
                _set_environ(saved)


def _set_environ(variables: Mapping[str, str]) -> None:
    # Key by key rather than clear() then update(): other threads (the sandbox's) never
    # see an empty environment.
    for key in [k for k in os.environ if k not in variables]:
        del os.environ[key]
    for key, value in variables.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
