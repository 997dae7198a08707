"""An NLB data-plane stand-in: TCP listeners on loopback that forward to the healthy
targets of their target group, as moto (which models only the control plane) cannot.

It runs in the process that hosts moto server, reads listeners and target groups straight
from moto's elbv2 backend, and reports target states back through ``DescribeTargetHealth``
(``moto_ext.set_health_provider``). What it models is what matters for failover:

- **Registration and health checks.** A new target is ``initial`` (reason
  ``Elb.RegistrationInProgress``) for ``registration_delay_s``, then ``initial``
  (``Elb.InitialHealthChecking``) until ``HealthyThresholdCount`` consecutive TCP checks
  pass, one every ``HealthCheckIntervalSeconds``; ``UnhealthyThresholdCount`` failures make
  it ``unhealthy``. AWS: "The load balancer starts routing requests to a newly registered
  target as soon as the registration process completes and the targets pass the initial
  health checks. It can take a few minutes for the registration process to complete and
  health checks to start." (Elastic Load Balancing, Network Load Balancers, "Health checks
  for Network Load Balancer target groups"). The default delay, 30 s, is the short end of
  that; the drill's numbers do not depend on it while the group fails open.
- **Deregistration.** A deregistered target is ``draining`` for
  ``deregistration_delay.timeout_seconds``: it takes no new connection; its open ones are
  closed at the end of the delay when ``connection_termination.enabled`` is true, and kept
  otherwise.
- **Routing and fail-open.** New connections go to healthy targets; when none is healthy,
  to every registered target that is not draining, whatever its health ("If all targets
  fail health checks at the same time in all enabled Availability Zones, the load balancer
  fails open"; same page). A target that turns unhealthy has its connections reset unless
  the group is failing open.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import moto_ext, nlb_tls

__all__ = ["DataPlane", "TargetRuntime", "DEFAULT_REGISTRATION_DELAY_S"]

log = logging.getLogger("cachebridge.sandbox.nlb")

DEFAULT_REGISTRATION_DELAY_S = 30.0
TICK_S = 0.1


@dataclass
class TargetRuntime:
    ip: str
    port: int
    state: str = "initial"
    reason: str | None = "Elb.RegistrationInProgress"
    passes: int = 0
    failures: int = 0
    next_check: float = 0.0
    draining_since: float | None = None
    connections: set[asyncio.StreamWriter] = field(default_factory=set)

    def set_state(self, state: str, reason: str | None) -> None:
        self.state, self.reason = state, reason


@dataclass
class GroupSettings:
    interval_s: float
    timeout_s: float
    healthy_threshold: int
    unhealthy_threshold: int
    deregistration_delay_s: float
    connection_termination: bool

    @classmethod
    def of(cls, group: Any, time_scale: float = 1.0) -> "GroupSettings":
        attrs = group.attributes
        return cls(
            interval_s=float(group.health_check_interval_seconds or 30) * time_scale,
            timeout_s=float(group.health_check_timeout_seconds or 10) * time_scale,
            healthy_threshold=int(group.healthy_threshold_count or 5),
            unhealthy_threshold=int(group.unhealthy_threshold_count or 2),
            deregistration_delay_s=float(attrs.get("deregistration_delay.timeout_seconds", 300)) * time_scale,
            connection_termination=str(attrs.get("deregistration_delay.connection_termination.enabled", "false")).lower() == "true",
        )


class DataPlane:
    """Listeners and target health for one account and region of moto's elbv2 backend."""

    def __init__(
        self,
        account_id: str,
        region: str,
        *,
        host: str = "127.0.0.1",
        registration_delay_s: float = DEFAULT_REGISTRATION_DELAY_S,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``time_scale`` multiplies every modelled duration (registration delay, health
        check interval and timeout, deregistration delay): below 1 it runs the same
        sequence faster, for tests, while the API still shows the configured values."""
        self.account_id = account_id
        self.region = region
        self.host = host
        self.registration_delay_s = registration_delay_s * time_scale
        self.time_scale = time_scale
        self.clock = clock
        self.targets: dict[str, dict[tuple[str, int], TargetRuntime]] = {}
        self.listeners: dict[str, tuple[int, asyncio.base_events.Server | None, str | None]] = {}
        self.listener_errors: dict[str, str] = {}
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()

    # -- moto side ---------------------------------------------------------------------------

    def _backend(self) -> Any:
        from moto.elbv2.models import elbv2_backends

        return elbv2_backends[self.account_id][self.region]

    def health(self, arn: str, ip: str, port: int) -> moto_ext.HealthReport | None:
        with self._lock:
            runtime = self.targets.get(arn, {}).get((ip, port))
            if runtime is None:
                # Registered a moment ago, before the next tick picked it up.
                return moto_ext.HealthReport("initial", "Elb.RegistrationInProgress", _DESCRIPTIONS["Elb.RegistrationInProgress"])
            return moto_ext.HealthReport(runtime.state, runtime.reason, _DESCRIPTIONS.get(runtime.reason or ""))

    def draining(self, arn: str) -> list[tuple[str, int]]:
        with self._lock:
            return [key for key, t in self.targets.get(arn, {}).items() if t.state == "draining"]

    def snapshot(self) -> dict[str, Any]:
        """Listeners and target states, for ``sandbox status`` and tests."""
        with self._lock:
            return {
                "listeners": {arn: {"port": port, "target_group": tg, "error": self.listener_errors.get(arn)} for arn, (port, _, tg) in self.listeners.items()},
                "targets": {
                    arn: {f"{ip}:{port}": {"state": t.state, "reason": t.reason, "connections": len(t.connections)} for (ip, port), t in group.items()}
                    for arn, group in self.targets.items()
                },
            }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "DataPlane":
        moto_ext.install()
        moto_ext.set_health_provider(self.health)
        moto_ext.set_draining_provider(self.draining)
        self._thread = threading.Thread(target=self._run, name="cachebridge-nlb", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("NLB data plane did not start")
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        moto_ext.set_health_provider(None)
        moto_ext.set_draining_provider(None)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._ready.set()
        try:
            while not self._stopping.is_set():
                try:
                    await self._reconcile_listeners()
                    await self._reconcile_targets()
                except Exception:  # keep serving; a half-built moto object is retried next tick
                    log.exception("data plane tick failed")
                await asyncio.sleep(TICK_S)
        finally:
            for _, server, _ in list(self.listeners.values()):
                if server is not None:
                    server.close()
            with self._lock:
                for group in self.targets.values():
                    for t in group.values():
                        for writer in list(t.connections):
                            _reset(writer)

    # -- listeners ---------------------------------------------------------------------------

    async def _reconcile_listeners(self) -> None:
        backend = self._backend()
        wanted: dict[str, tuple[int, str | None]] = {}
        for lb in list(backend.load_balancers.values()):
            if getattr(lb, "loadbalancer_type", "network") != "network":
                continue
            for listener in list(lb.listeners.values()):
                wanted[listener.arn] = (int(listener.port), _forward_target(listener))
        for arn in list(self.listeners):
            if arn not in wanted:
                _, server, _ = self.listeners.pop(arn)
                if server is not None:
                    server.close()
                self.listener_errors.pop(arn, None)
        for arn, (port, tg) in wanted.items():
            if arn in self.listeners:
                old_port, server, _ = self.listeners[arn]
                self.listeners[arn] = (old_port, server, tg)
                continue
            try:
                tls = nlb_tls.listener_context(backend, arn, self.account_id, self.region)
            except ValueError as exc:
                self.listeners[arn], self.listener_errors[arn] = (port, None, tg), str(exc)
                continue
            try:
                server = await asyncio.start_server(
                    lambda r, w, a=arn: self._serve(a, r, w), self.host, port, reuse_address=True, ssl=tls
                )
                self.listeners[arn] = (port, server, tg)
            except OSError as exc:
                self.listeners[arn] = (port, None, tg)
                self.listener_errors[arn] = f"cannot listen on {self.host}:{port}: {exc.strerror}"
                log.warning("listener %s: %s", arn, self.listener_errors[arn])

    def _pick(self, tg_arn: str) -> TargetRuntime | None:
        with self._lock:
            group = [t for t in self.targets.get(tg_arn, {}).values() if t.state != "draining"]
        healthy = [t for t in group if t.state == "healthy"]
        candidates = healthy or group  # fail open when nothing is healthy
        return random.choice(candidates) if candidates else None

    async def _serve(self, listener_arn: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tg = self.listeners.get(listener_arn, (0, None, None))[2]
        target = self._pick(tg) if tg else None
        if target is None:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(target.ip, target.port, ssl=nlb_tls.target_context(self._backend(), tg)), 5)
        except (OSError, asyncio.TimeoutError):
            _reset(writer)
            return
        with self._lock:
            target.connections.add(writer)
            target.connections.add(up_writer)
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            with self._lock:
                target.connections.discard(writer)
                target.connections.discard(up_writer)
            _close(writer)
            _close(up_writer)

    # -- targets -----------------------------------------------------------------------------

    async def _reconcile_targets(self) -> None:
        backend = self._backend()
        now = self.clock()
        checks: list[tuple[str, TargetRuntime, GroupSettings]] = []
        with self._lock:
            for arn, group in list(backend.target_groups.items()):
                settings = GroupSettings.of(group, self.time_scale)
                runtimes = self.targets.setdefault(arn, {})
                registered = {(r["Id"], int(r["Port"])) for r in list(group.targets.values())}
                for key in registered:
                    t = runtimes.get(key)
                    if t is None or t.state == "draining":
                        # New, or registered again while draining: starts over, as on AWS.
                        old = t
                        t = TargetRuntime(key[0], key[1], next_check=now + self.registration_delay_s)
                        if old is not None:
                            t.connections = old.connections
                        runtimes[key] = t
                for key, t in list(runtimes.items()):
                    if key not in registered and t.state != "draining":
                        t.set_state("draining", "Target.DeregistrationInProgress")
                        t.draining_since = now
                    if t.state == "draining" and t.draining_since is not None and now - t.draining_since >= settings.deregistration_delay_s:
                        if settings.connection_termination:
                            for writer in list(t.connections):
                                _reset(writer)
                        runtimes.pop(key)
                    elif t.state != "draining" and now >= t.next_check:
                        t.next_check = now + settings.interval_s
                        checks.append((arn, t, settings))
            for arn in list(self.targets):
                if arn not in backend.target_groups:
                    self.targets.pop(arn)
        if checks:
            results = await asyncio.gather(*(_tcp_check(t.ip, t.port, s.timeout_s) for _, t, s in checks))
            with self._lock:
                for (arn, t, s), ok in zip(checks, results):
                    self._record(arn, t, s, ok)

    def _record(self, arn: str, t: TargetRuntime, s: GroupSettings, ok: bool) -> None:
        if t.state == "draining":
            return
        if ok:
            t.passes, t.failures = t.passes + 1, 0
            if t.state != "healthy" and t.passes >= s.healthy_threshold:
                t.set_state("healthy", None)
            elif t.state == "initial":
                t.set_state("initial", "Elb.InitialHealthChecking")
        else:
            t.failures, t.passes = t.failures + 1, 0
            if t.state == "initial":
                t.set_state("initial", "Elb.InitialHealthChecking")
            if t.failures >= s.unhealthy_threshold and t.state != "unhealthy":
                t.set_state("unhealthy", "Target.FailedHealthChecks")
                group_failing_open = not any(
                    o.state == "healthy" for o in self.targets.get(arn, {}).values()
                )
                if not group_failing_open:
                    for writer in list(t.connections):
                        _reset(writer)


_DESCRIPTIONS = {
    "Elb.RegistrationInProgress": "Target registration is in progress",
    "Elb.InitialHealthChecking": "Initial health checks in progress",
    "Target.FailedHealthChecks": "Health checks failed",
    "Target.DeregistrationInProgress": "Target deregistration is in progress",
}


def _forward_target(listener: Any) -> str | None:
    for action in listener.default_actions or []:
        data = getattr(action, "data", action)
        if data.get("Type") == "forward":
            if data.get("TargetGroupArn"):
                return str(data["TargetGroupArn"])
            groups = data.get("ForwardConfig", {}).get("TargetGroups", [])
            if groups:
                return str(groups[0]["TargetGroupArn"])
    return None


async def _tcp_check(ip: str, port: int, timeout: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    _close(writer)
    return True


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        _close(writer)


def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
    except (OSError, RuntimeError):
        pass


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as the NLB does when it terminates a connection."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
    transport = writer.transport
    try:
        transport.abort()
    except (OSError, RuntimeError):
        pass
