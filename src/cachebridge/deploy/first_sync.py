"""The first sync after a deploy: invoke the function, or run its handler in this process
with the deployed function's environment (``deploy.local``)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from botocore.exceptions import ClientError

from ..errors import CacheBridgeError, ConfigError
from .clients import Clients, _message, _region
from .local import LocalFunction

__all__ = ["INVOKE_MODES", "run_sync"]


INVOKE_MODES = ("lambda", "local", "none")
InvokeMode = Literal["lambda", "local", "none"]


def run_sync(
    mode: InvokeMode,
    function_name: str,
    *,
    clients: Callable[[str], Any] | None = None,
    region: str | None = None,
    nameservers: Sequence[str] = (),
    code: bytes | None = None,
) -> dict[str, Any] | None:
    """One sync by the deployed controller. Returns ``{"mode", "ok", "report" | "error"}``.
    ``code`` (the function's zip) lets a local run read the files the zip ships."""
    clients = clients or Clients()
    if mode == "none":
        return None
    lam = clients("lambda")
    if mode == "lambda":
        try:
            response = lam.invoke(FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps({"action": "sync"}).encode())
        except ClientError as exc:
            return {"mode": mode, "ok": False, "error": _message(exc)}
        payload_text = response["Payload"].read().decode("utf-8", "replace")
        try:
            payload = json.loads(payload_text) if payload_text else None
        except json.JSONDecodeError:
            payload = payload_text
        if response.get("FunctionError"):
            message = payload.get("errorMessage") if isinstance(payload, dict) else payload
            return {"mode": mode, "ok": False, "error": str(message), "report": payload}
        return {"mode": mode, "ok": bool(isinstance(payload, dict) and payload.get("ok")), "report": payload}
    if mode != "local":
        raise ConfigError("--invoke", f"{mode!r} is not a mode", ", ".join(INVOKE_MODES))
    try:
        configuration = lam.get_function_configuration(FunctionName=function_name)
    except ClientError as exc:
        return {"mode": mode, "ok": False, "error": _message(exc)}
    return _run_local(configuration, region or _region(lam), nameservers, code)


def _run_local(configuration: Mapping[str, Any], region: str, nameservers: Sequence[str], code: bytes | None = None) -> dict[str, Any]:
    from ..errors import SyncFailed

    overrides: dict[str, str] = {}
    if nameservers:
        overrides["CACHEBRIDGE_NAMESERVERS"] = ",".join(nameservers)
    # Lambda sets the region itself; here it is the region the function was read from.
    function = LocalFunction(configuration, {"AWS_REGION": region, "AWS_DEFAULT_REGION": region, **overrides}, cold_start=True, code=code)
    logs = io.StringIO()
    result: dict[str, Any] = {
        "mode": "local",
        "function_environment": sorted(function.variables),
        "overrides": overrides,
    }
    try:
        with contextlib.redirect_stdout(logs):
            payload = function.invoke({"action": "sync"})
        result.update(ok=bool(payload.get("ok")), report=payload)
    except SyncFailed as exc:
        report = exc.report.to_json() if hasattr(exc.report, "to_json") else None  # type: ignore[union-attr]
        result.update(ok=False, error=str(exc), report=report)
    except CacheBridgeError as exc:
        result.update(ok=False, error=str(exc))
    result["log_lines"] = [line for line in logs.getvalue().splitlines() if line.strip()]
    return result
