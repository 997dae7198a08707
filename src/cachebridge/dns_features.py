"""dnspython's optional features, settled before dnspython asks.

When its modules load, dnspython asks whether optional packages are installed (``idna`` in
``dns.name``, ``httpx``/``h2`` in ``dns.query``, ``aioquic`` in ``dns.quic``) by looking
their versions up with ``importlib.metadata``, which scans every distribution on
``sys.path``: several milliseconds of a new Lambda instance's start, for packages the
function never has (the zip ships dnspython alone). A feature whose packages cannot be
imported at all is unavailable whatever the metadata says, so it is set off here with
dnspython's own ``dns._features.force`` and never looked up; a feature whose packages are
importable is left to dnspython's check. dnspython sees the same features either way.

Imported before any other ``dns`` module (``sources`` imports it first).
"""

from __future__ import annotations

import importlib.util

import dns._features

__all__ = ["settle", "settled"]

settled: dict[str, bool] = {}  # what ``settle`` set off, by feature


def _importable(requirement: str) -> bool:
    package = requirement.split(">=")[0].strip().replace("-", "_")
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def settle() -> dict[str, bool]:
    """Set off every feature with a package that cannot be imported; returns those."""
    requirements = getattr(dns._features, "_requirements", {})
    for feature, needs in requirements.items():
        if feature not in dns._features._cache and not all(_importable(r) for r in needs):
            dns._features.force(feature, False)
            settled[feature] = False
    return dict(settled)


settle()
