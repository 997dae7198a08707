"""How the sandbox's NLB stand-in times what AWS does not promise to do at once.

Two profiles. ``documented`` (the default) holds the NLB to what Elastic Load Balancing's
documentation says and no better; where the documentation gives no figure, it takes the
public report named below and says so. ``optimistic`` is the friendly NLB the sandbox
modelled first: new targets take traffic while still ``initial`` and every change reaches
the data plane at once. Drills under ``optimistic`` show what a failover costs when the NLB
is fast; drills under ``documented`` show what a user can count on.

What each parameter models, and its source:

``registration_delay_s`` (documented: 120 s; optimistic: 30 s)
    Time from RegisterTargets until the first health check. "The load balancer starts
    routing requests to a newly registered target as soon as the registration process
    completes and the targets pass the initial health checks. It can take a few minutes
    for the registration process to complete and health checks to start." (Elastic Load
    Balancing, Network Load Balancers, "Health checks for Network Load Balancer target
    groups"; the same sentences on "Register targets for your Network Load Balancer"). No
    figure is documented; 120 s reads "a few minutes" at its short end. Public reports are
    longer: "The NLB target registration can take from 90 to 180 seconds to complete"
    (kubernetes-sigs/aws-load-balancer-controller#1834, a maintainer), "4~5mins" (#1786).

``initial_takes_traffic`` (documented: False; optimistic: True)
    Whether fail-open sends traffic to targets still ``initial``. The documentation says
    routing starts once registration completes and the initial health checks pass (above),
    and that "If all targets fail health checks at the same time in all enabled
    Availability Zones, the load balancer fails open" ("Health checks for Network Load
    Balancer target groups"). A target in ``initial`` has not failed a health check; nothing
    documents that fail-open covers it, so ``documented`` gives it no traffic even when it
    is the only target. Targets past ``initial`` (``unhealthy``) are covered.

``deregistration_lag_s`` (documented: 120 s; optimistic: 0)
    Time after DeregisterTargets during which a target that took new connections still
    takes them. "It can take a few minutes for the deregistration process to complete and
    for the load balancer to stop routing requests to the target." ("Register targets for
    your Network Load Balancer"). No figure is documented; 120 s reads "a few minutes" as
    the registration delay does, and matches a public report: "It also takes about two
    minutes (and that if the deregistration delay is set to a minimum or even zero [...])
    for the connections to stop coming to the target being drained after the
    deregistration call is made" (aws/containers-roadmap#470, 2023). The API shows the
    target ``draining`` at once, and connection termination still happens when the
    target group's deregistration delay ends; connections opened during the lag are reset
    when the lag ends (when termination is on).

``listener_propagation_s`` (documented: 10 s; optimistic: 0)
    Time from ModifyListener until new connections follow the new default action. "When
    the target group for the default action of a TCP or TLS listener is updated, new
    connections are routed to the newly configured target group. However, this has no
    effect on any active connections that were created prior to this change. These active
    connections remain associated to the target in the original target group for up to one
    hour if traffic is being sent [...]. The parameter Connection termination on
    deregistration is not applied when updating the listener" ("Update a listener for your
    Network Load Balancer"). AWS documents no figure for the delay; 10 s is our choice, and
    one user saw new connections reach the old targets for "~75 seconds" after an update
    (aws/containers-roadmap#470, 2019). Established flows never move, in both profiles.

``unused_when_unattached`` (documented: True; optimistic: False)
    Whether a target group that no listener forwards to leaves its targets ``unused``
    (``Target.NotInUse``) and unchecked. AWS's target health states: "unused: The target
    group is not used by any load balancer [...]" ("Health checks for Network Load
    Balancer target groups", target health status). Health checks and registration start
    once a listener uses the group.

``time_scale`` multiplies every modelled duration (these four, and the target group's
health-check interval and timeout and deregistration delay) so that demos and tests run the
same sequence faster; the API keeps showing the configured values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = [
    "NlbProfile",
    "PROFILES",
    "DEFAULT_PROFILE",
    "PROFILE_NAMES",
    "resolve_profile",
]


@dataclass(frozen=True)
class NlbProfile:
    """The NLB stand-in's timings (in AWS seconds, before ``time_scale``)."""

    name: str
    registration_delay_s: float
    deregistration_lag_s: float
    listener_propagation_s: float
    initial_takes_traffic: bool
    unused_when_unattached: bool
    time_scale: float = 1.0

    def scaled(self, seconds: float) -> float:
        """``seconds`` of AWS time as the stand-in runs it."""
        return seconds * self.time_scale

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for ``sandbox status`` and the drill."""
        scale = f", time scale {self.time_scale:g}" if self.time_scale != 1 else ""
        fail_open = "fail-open includes initial targets" if self.initial_takes_traffic else "fail-open excludes initial targets"
        return (
            f"{self.name}: registration {self.registration_delay_s:g} s, deregistration lag "
            f"{self.deregistration_lag_s:g} s, listener propagation {self.listener_propagation_s:g} s, "
            f"{fail_open}{scale}"
        )


PROFILES: dict[str, NlbProfile] = {
    "documented": NlbProfile(
        name="documented",
        registration_delay_s=120.0,
        deregistration_lag_s=120.0,
        listener_propagation_s=10.0,
        initial_takes_traffic=False,
        unused_when_unattached=True,
    ),
    "optimistic": NlbProfile(
        name="optimistic",
        registration_delay_s=30.0,
        deregistration_lag_s=0.0,
        listener_propagation_s=0.0,
        initial_takes_traffic=True,
        unused_when_unattached=False,
    ),
}
DEFAULT_PROFILE = "documented"
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)


def resolve_profile(
    name: str = DEFAULT_PROFILE,
    *,
    registration_delay_s: float | None = None,
    deregistration_lag_s: float | None = None,
    listener_propagation_s: float | None = None,
    time_scale: float = 1.0,
) -> NlbProfile:
    """The named profile with any parameter given here in place of its own."""
    if name not in PROFILES:
        raise ValueError(f"unknown NLB profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
    if not time_scale > 0:
        raise ValueError(f"the time scale must be above 0, not {time_scale:g}")
    overrides: dict[str, Any] = {"time_scale": float(time_scale)}
    for key, value in (
        ("registration_delay_s", registration_delay_s),
        ("deregistration_lag_s", deregistration_lag_s),
        ("listener_propagation_s", listener_propagation_s),
    ):
        if value is not None:
            if value < 0:
                raise ValueError(f"{key} must be 0 or more, not {value:g}")
            overrides[key] = float(value)
    return replace(PROFILES[name], **overrides)
