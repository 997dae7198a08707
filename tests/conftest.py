"""Fixtures every test gets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cachebridge import pacing


@pytest.fixture(autouse=True)
def _full_elb_describe_bucket() -> Iterator[None]:
    """The controller paces its ELB Describe* calls with one bucket per process (``pacing``),
    at the documented 40 / 10 a second unless a config says otherwise. moto does not
    throttle, and a test session is one long-lived process: each test starts with a full
    bucket, so a test is paced only past 40 Describe* calls of its own."""
    pacing.reset()
    yield
