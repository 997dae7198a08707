"""The NLB stand-in's profiles: the documented defaults, overrides, and bad values refused."""

from __future__ import annotations

import inspect

import pytest

from cachebridge.sandbox import nlb_profiles
from cachebridge.sandbox.nlb_profiles import DEFAULT_PROFILE, PROFILES, resolve_profile


def test_documented_is_the_default_and_holds_the_documented_figures() -> None:
    assert DEFAULT_PROFILE == "documented"
    documented = resolve_profile()
    assert documented == PROFILES["documented"]
    assert (documented.registration_delay_s, documented.deregistration_lag_s, documented.listener_propagation_s) == (120, 120, 10)
    assert not documented.initial_takes_traffic and documented.unused_when_unattached
    assert documented.time_scale == 1


def test_optimistic_is_the_fast_nlb_the_sandbox_modelled_first() -> None:
    optimistic = resolve_profile("optimistic")
    assert (optimistic.registration_delay_s, optimistic.deregistration_lag_s, optimistic.listener_propagation_s) == (30, 0, 0)
    assert optimistic.initial_takes_traffic and not optimistic.unused_when_unattached


def test_overrides_and_time_scale() -> None:
    profile = resolve_profile("documented", listener_propagation_s=75, registration_delay_s=180, time_scale=0.1)
    assert profile.name == "documented"
    assert (profile.registration_delay_s, profile.deregistration_lag_s, profile.listener_propagation_s) == (180, 120, 75)
    assert profile.scaled(profile.listener_propagation_s) == pytest.approx(7.5)
    assert profile.as_dict()["time_scale"] == 0.1
    assert "listener propagation 75 s" in profile.describe() and "time scale 0.1" in profile.describe()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "friendly"}, "unknown NLB profile 'friendly'; choose one of documented, optimistic"),
        ({"time_scale": 0}, "time scale must be above 0"),
        ({"deregistration_lag_s": -1}, "deregistration_lag_s must be 0 or more"),
    ],
)
def test_bad_values_are_refused_with_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_profile(**kwargs)


def test_every_modelled_number_cites_its_source() -> None:
    doc = " ".join((inspect.getdoc(nlb_profiles) or "").split())
    for field in ("registration_delay_s", "initial_takes_traffic", "deregistration_lag_s", "listener_propagation_s",
                  "unused_when_unattached"):
        assert f"``{field}``" in doc
    for source in ("Health checks for Network Load Balancer target groups", "Register targets for your Network Load Balancer",
                   "Update a listener for your Network Load Balancer", "aws/containers-roadmap#470",
                   "aws-load-balancer-controller#1834"):
        assert source in doc
