"""An NLB data-plane stand-in: TCP listeners on loopback that forward to the healthy
targets of their target group, as moto (which models only the control plane) cannot.

It runs in the process that hosts moto server, reads listeners and target groups straight
from moto's elbv2 backend, and reports target states back through ``DescribeTargetHealth``
(``moto_ext.set_health_provider``). What it models is what matters for failover:

- **Registration and health checks.** A new target is ``initial`` (reason
  ``Elb.RegistrationInProgress``) for the profile's registration delay, then ``initial``
  (``Elb.InitialHealthChecking``) until ``HealthyThresholdCount`` consecutive TCP checks
  pass, one every ``HealthCheckIntervalSeconds``; ``UnhealthyThresholdCount`` failures make
  it ``unhealthy``. Under ``documented``, a target group that no listener forwards to is
  ``unused`` (``Target.NotInUse``) and never checked, as on AWS.
- **Deregistration.** A deregistered target is ``draining`` for
  ``deregistration_delay.timeout_seconds``; its open connections are closed at the end of
  the delay when ``connection_termination.enabled`` is true, and kept otherwise. During the
  profile's deregistration lag it still takes new connections as it did before; those are
  closed when the lag ends (termination on).
- **Listeners.** A change of a listener's default action reaches new connections after the
  profile's listener propagation delay; established connections stay where they are.
- **Routing and fail-open.** New connections go to healthy targets; when none is healthy,
  the group fails open ("If all targets fail health checks at the same time in all enabled
  Availability Zones, the load balancer fails open"; same page): to targets past
  ``initial`` under ``documented``, to every registered target under ``optimistic``. A
  target that turns unhealthy has its connections reset unless the group is failing open.

The timings, and where each comes from, are in ``nlb_profiles``.
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
from .nlb_profiles import DEFAULT_PROFILE, PROFILES, NlbProfile, resolve_profile

__all__ = ["DataPlane", "TargetRuntime", "DEFAULT_REGISTRATION_DELAY_S"]

log = logging.getLogger("cachebridge.sandbox.nlb")

DEFAULT_REGISTRATION_DELAY_S = PROFILES[DEFAULT_PROFILE].registration_delay_s
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
    drain_until: float = 0.0  # end of the deregistration delay: ``draining`` in the API
    routable_until: float = 0.0  # end of the deregistration lag: new connections until then
    routed_as: str | None = None  # the state it was routed by when deregistered
    terminate: bool = False
    terminated: bool = False
    connections: set[asyncio.StreamWriter] = field(default_factory=set)

    def set_state(self, state: str, reason: str | None) -> None:
        self.state, self.reason = state, reason

    def routing_state(self, now: float) -> str | None:
        """The state new connections see: its own, or during the deregistration lag the one
        it had when deregistered; ``None`` once it takes no new connection."""
        if self.draining_since is None:
            return self.state
        return self.routed_as if now < self.routable_until else None


@dataclass
class ForwardState:
    """A listener's default action as new connections follow it: ``current`` now, and the
    changes still propagating as ``(effective_at, target_group_arn)``."""

    current: str | None
    latest: str | None
    pending: list[tuple[float, str | None]] = field(default_factory=list)

    def at(self, now: float) -> str | None:
        while self.pending and self.pending[0][0] <= now:
            self.current = self.pending.pop(0)[1]
        return self.current


@dataclass
class GroupSettings:
    interval_s: float
    timeout_s: float
    healthy_threshold: int
    unhealthy_threshold: int
    deregistration_delay_s: float
    connection_termination: bool
    health_check_port: int | None = None  # None: the target's own port ("traffic-port")

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
            health_check_port=int(group.health_check_port) if str(group.health_check_port or "").isdigit() else None,
        )


class DataPlane:
    """Listeners and target health for one account and region of moto's elbv2 backend."""

    def __init__(
        self,
        account_id: str,
        region: str,
        *,
        host: str = "127.0.0.1",
        profile: NlbProfile | None = None,
        registration_delay_s: float | None = None,
        time_scale: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``profile`` sets the timings (default: ``documented``); ``registration_delay_s``
        and ``time_scale`` override the profile's. The time scale multiplies every modelled
        duration (the profile's, and the health check interval and timeout and the
        deregistration delay): below 1 it runs the same sequence faster, for tests, while
        the API still shows the configured values."""
        base = profile or resolve_profile(DEFAULT_PROFILE)
        self.profile = resolve_profile(
            base.name,
            registration_delay_s=registration_delay_s if registration_delay_s is not None else base.registration_delay_s,
            deregistration_lag_s=base.deregistration_lag_s,
            listener_propagation_s=base.listener_propagation_s,
            time_scale=time_scale if time_scale is not None else base.time_scale,
        )
        self.account_id = account_id
        self.region = region
        self.host = host
        self.time_scale = self.profile.time_scale
        self.registration_delay_s = self.profile.scaled(self.profile.registration_delay_s)
        self.deregistration_lag_s = self.profile.scaled(self.profile.deregistration_lag_s)
        self.listener_propagation_s = self.profile.scaled(self.profile.listener_propagation_s)
        self.clock = clock
        self.targets: dict[str, dict[tuple[str, int], TargetRuntime]] = {}
        # (port, server, target group of the default action as the API holds it)
        self.listeners: dict[str, tuple[int, asyncio.base_events.Server | None, str | None]] = {}
        self.forwards: dict[str, ForwardState] = {}
        self.listener_errors: dict[str, str] = {}
        # Listeners whose port could not be bound (taken for a moment, e.g. by an outgoing
        # connection's ephemeral port): tried again on every tick until they listen.
        self._unbound: set[str] = set()
        self._used_groups: set[str] = set()
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
        # Listed until the end of the deregistration delay has been applied (its connections
        # closed), not merely reached: the API never shows the target gone too early.
        with self._lock:
            return [key for key, t in self.targets.get(arn, {}).items() if t.state == "draining" and not t.terminated]

    def snapshot(self) -> dict[str, Any]:
        """Listeners and target states, for ``sandbox status`` and tests. A listener's
        ``target_group`` is its default action as the API holds it; ``routing_to`` is
        where new connections go now (they differ while a change propagates)."""
        now = self.clock()
        with self._lock:
            listeners = {}
            for arn, (port, _, tg) in self.listeners.items():
                forward = self.forwards.get(arn)
                listeners[arn] = {
                    "port": port,
                    "target_group": tg,
                    "routing_to": forward.at(now) if forward else tg,
                    "error": self.listener_errors.get(arn),
                }
            return {
                "profile": self.profile.as_dict(),
                "listeners": listeners,
                "targets": {
                    arn: {
                        f"{ip}:{port}": {
                            "state": t.state,
                            "reason": t.reason,
                            "connections": len(t.connections),
                            "takes_new_connections": t.routing_state(now) is not None and t.routing_state(now) != "unused",
                        }
                        for (ip, port), t in group.items()
                    }
                    for arn, group in self.targets.items()
                },
            }

    def _on_membership(self, arn: str, change: str, key: tuple[str, int]) -> None:
        """moto_ext's membership observer: time each call from the moment it lands."""
        now = self.clock()
        group = self._backend().target_groups.get(arn)
        if group is None:
            return
        with self._lock:
            runtimes = self.targets.setdefault(arn, {})
            t = runtimes.get(key)
            if change == "register":
                if t is None or t.draining_since is not None:
                    runtimes[key] = self._fresh(key, now, t)
            elif t is not None and t.draining_since is None:
                self._start_draining(t, GroupSettings.of(group, self.time_scale), now)

    def _fresh(self, key: tuple[str, int], now: float, previous: TargetRuntime | None) -> TargetRuntime:
        # New, or registered again while draining: starts over, as on AWS; established
        # connections are not the registration's business and stay open.
        t = TargetRuntime(key[0], key[1], next_check=now + self.registration_delay_s)
        if previous is not None:
            t.connections = previous.connections
        return t

    def _start_draining(self, t: TargetRuntime, settings: "GroupSettings", now: float) -> None:
        t.routed_as = t.state
        t.draining_since = now
        t.drain_until = now + settings.deregistration_delay_s
        t.routable_until = now + self.deregistration_lag_s
        t.terminate = settings.connection_termination
        t.set_state("draining", "Target.DeregistrationInProgress")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "DataPlane":
        moto_ext.install()
        moto_ext.set_health_provider(self.health)
        moto_ext.set_draining_provider(self.draining)
        moto_ext.set_membership_observer(self._on_membership)
        self._thread = threading.Thread(target=self._run, name="cachebridge-nlb", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("NLB data plane did not start")
        return self

    def wait_listening(self, timeout: float) -> dict[str, str]:
        """Wait (at most ``timeout`` seconds) until every NLB listener the API holds is
        listening, or refused for good (a TLS listener whose certificate cannot serve, in
        ``listener_errors``); returns why each other one is not (listener ARN -> why)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                wanted = {
                    listener.arn
                    for lb in list(self._backend().load_balancers.values())
                    if getattr(lb, "loadbalancer_type", "network") == "network"
                    for listener in list(lb.listeners.values())
                }
            missing = {
                arn for arn in wanted
                if self.listeners.get(arn, (0, None, None))[1] is None and (arn in self._unbound or arn not in self.listener_errors)
            }
            if not missing or time.monotonic() >= deadline:
                return {arn: self.listener_errors.get(arn, "not listening yet") for arn in sorted(missing)}
            time.sleep(TICK_S)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        moto_ext.set_health_provider(None)
        moto_ext.set_draining_provider(None)
        moto_ext.set_membership_observer(None)

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
        now = self.clock()
        wanted: dict[str, tuple[int, str | None]] = {}
        for lb in list(backend.load_balancers.values()):
            if getattr(lb, "loadbalancer_type", "network") != "network":
                continue
            for listener in list(lb.listeners.values()):
                wanted[listener.arn] = (int(listener.port), _forward_target(listener))
        with self._lock:
            for arn, (_, tg) in wanted.items():
                forward = self.forwards.get(arn)
                if forward is None:
                    self.forwards[arn] = ForwardState(tg, tg)
                elif tg != forward.latest:
                    # Seen within one tick of ModifyListener; reaches new connections later.
                    forward.latest = tg
                    forward.pending.append((now + self.listener_propagation_s, tg))
            # In use: what a listener forwards to, in the API or still in the data plane.
            self._used_groups = {tg for _, tg in wanted.values() if tg} | {
                tg for arn, f in self.forwards.items() if arn in wanted
                for tg in (f.at(now), *(p for _, p in f.pending)) if tg
            }
        for arn in list(self.listeners):
            if arn not in wanted:
                self._unbound.discard(arn)
                _, server, _ = self.listeners.pop(arn)
                if server is not None:
                    server.close()
                self.listener_errors.pop(arn, None)
                self.forwards.pop(arn, None)
        for arn, (port, tg) in wanted.items():
            if arn in self.listeners and arn not in self._unbound:
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
                self._unbound.discard(arn)
                self.listener_errors.pop(arn, None)
            except OSError as exc:
                self.listeners[arn] = (port, None, tg)
                error = f"cannot listen on {self.host}:{port}: {exc.strerror}"
                if self.listener_errors.get(arn) != error:
                    log.warning("listener %s: %s (tried again every tick)", arn, error)
                self.listener_errors[arn] = error
                self._unbound.add(arn)

    def _pick(self, tg_arn: str) -> TargetRuntime | None:
        now = self.clock()
        with self._lock:
            routable = [(t, t.routing_state(now)) for t in self.targets.get(tg_arn, {}).values()]
        routable = [(t, state) for t, state in routable if state is not None and state != "unused"]
        healthy = [t for t, state in routable if state == "healthy"]
        if healthy:
            return random.choice(healthy)
        # Nothing healthy: the group fails open, to targets past ``initial`` only unless the
        # profile lets ``initial`` ones take traffic too.
        if self.profile.initial_takes_traffic:
            candidates = [t for t, _ in routable]
        else:
            candidates = [t for t, state in routable if state == "unhealthy"]
        return random.choice(candidates) if candidates else None

    def _forward_now(self, listener_arn: str) -> str | None:
        with self._lock:
            forward = self.forwards.get(listener_arn)
            return forward.at(self.clock()) if forward else None

    async def _serve(self, listener_arn: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tg = self._forward_now(listener_arn)
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
                # The membership observer times each call; this catches what it did not see
                # (targets registered before the data plane started).
                for key in registered:
                    t = runtimes.get(key)
                    if t is None or t.state == "draining":
                        runtimes[key] = self._fresh(key, now, t)
                in_use = not self.profile.unused_when_unattached or arn in self._used_groups
                for key, t in list(runtimes.items()):
                    if key not in registered and t.draining_since is None:
                        self._start_draining(t, settings, now)
                    if t.draining_since is not None:
                        self._drain(runtimes, key, t, now)
                    elif not in_use:
                        # "unused: The target group is not used by any load balancer":
                        # no health checks, and registration starts when it is used.
                        t.set_state("unused", "Target.NotInUse")
                        t.passes = t.failures = 0
                        t.next_check = now + self.registration_delay_s
                    elif t.state == "unused":
                        t.set_state("initial", "Elb.RegistrationInProgress")
                    elif now >= t.next_check:
                        t.next_check = now + settings.interval_s
                        checks.append((arn, t, settings))
            for arn in list(self.targets):
                if arn not in backend.target_groups:
                    self.targets.pop(arn)
        if checks:
            results = await asyncio.gather(*(_tcp_check(t.ip, s.health_check_port or t.port, s.timeout_s) for _, t, s in checks))
            with self._lock:
                for (arn, t, s), ok in zip(checks, results):
                    self._record(arn, t, s, ok)

    def _drain(self, runtimes: dict[tuple[str, int], TargetRuntime], key: tuple[str, int], t: TargetRuntime, now: float) -> None:
        if not t.terminated and now >= t.drain_until:
            t.terminated = True
            if t.terminate:
                for writer in list(t.connections):
                    _reset(writer)
        if now >= max(t.drain_until, t.routable_until):
            # Connections opened during the deregistration lag end with it.
            if t.terminate:
                for writer in list(t.connections):
                    _reset(writer)
            runtimes.pop(key)

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
    "Target.NotInUse": "Target group is not configured to receive traffic from the load balancer",
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
