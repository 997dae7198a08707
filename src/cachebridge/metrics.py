"""CloudWatch metrics as Embedded Metric Format (EMF): JSON lines on stdout.

Lambda sends stdout to CloudWatch Logs, which turns each EMF line into metrics; no API
call, no extra latency, no ``cloudwatch:PutMetricData`` permission. One line per binding
per invocation, in namespace ``CacheBridge`` with the dimension ``Binding`` (and
``FunctionName`` when known)::

    Changes        Count         targets registered plus deregistered (0 on a dry run)
    Drift          Count         targets that differed from the source before the run
    SourceErrors   Count         1 when the source could not be read
    Skipped        Count         1 when the run did not reach the binding (out of time or of
                                 ELB read budget): nothing read or written, the next run
                                 reads it first
    SyncDuration   Milliseconds  time spent on the binding

Validated the way Powertools validates: no line without a namespace (and never an
``AWS/`` one) or without a metric, at most 100 metrics per line (``flush`` splits),
known units, finite values, at most 30 dimensions.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sync import BindingResult, SyncReport

__all__ = [
    "NAMESPACE",
    "MAX_METRICS",
    "MAX_DIMENSIONS",
    "MetricUnit",
    "MetricsValidationError",
    "MetricSet",
    "binding_metrics",
    "emit_report",
]

NAMESPACE = "CacheBridge"
MAX_METRICS = 100        # metric definitions per EMF line
MAX_DIMENSIONS = 30      # dimensions per dimension set
MAX_VALUES = 100         # values of one metric per line
_MAX_NAME = 255


class MetricUnit(str, Enum):
    """The units CloudWatch accepts."""

    SECONDS = "Seconds"
    MICROSECONDS = "Microseconds"
    MILLISECONDS = "Milliseconds"
    BYTES = "Bytes"
    KILOBYTES = "Kilobytes"
    MEGABYTES = "Megabytes"
    GIGABYTES = "Gigabytes"
    TERABYTES = "Terabytes"
    BITS = "Bits"
    KILOBITS = "Kilobits"
    MEGABITS = "Megabits"
    GIGABITS = "Gigabits"
    TERABITS = "Terabits"
    PERCENT = "Percent"
    COUNT = "Count"
    BYTES_PER_SECOND = "Bytes/Second"
    KILOBYTES_PER_SECOND = "Kilobytes/Second"
    MEGABYTES_PER_SECOND = "Megabytes/Second"
    GIGABYTES_PER_SECOND = "Gigabytes/Second"
    TERABYTES_PER_SECOND = "Terabytes/Second"
    BITS_PER_SECOND = "Bits/Second"
    KILOBITS_PER_SECOND = "Kilobits/Second"
    MEGABITS_PER_SECOND = "Megabits/Second"
    GIGABITS_PER_SECOND = "Gigabits/Second"
    TERABITS_PER_SECOND = "Terabits/Second"
    COUNT_PER_SECOND = "Count/Second"
    NONE = "None"


class MetricsValidationError(ValueError):
    """A metric line that CloudWatch would reject (or silently drop)."""


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise MetricsValidationError(f"{kind} name must be a non-empty string, not {name!r}")
    if len(name) > _MAX_NAME:
        raise MetricsValidationError(f"{kind} name {name[:40]!r}... is longer than {_MAX_NAME} characters")
    return name


class MetricSet:
    """Metrics that share a namespace, dimensions and timestamp: one EMF line each
    ``MAX_METRICS`` metrics."""

    def __init__(
        self,
        namespace: str | None = NAMESPACE,
        dimensions: Mapping[str, str] | None = None,
        *,
        timestamp_ms: int | None = None,
    ) -> None:
        self.namespace = namespace
        self.timestamp_ms = timestamp_ms
        self._metrics: dict[str, tuple[MetricUnit, list[float]]] = {}
        self._dimensions: dict[str, str] = {}
        self._metadata: dict[str, Any] = {}
        for name, value in (dimensions or {}).items():
            self.add_dimension(name, value)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(self._metrics)

    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None:
        _check_name("metric", name)
        try:
            unit = MetricUnit(unit)
        except ValueError:
            raise MetricsValidationError(
                f"metric {name}: unknown unit {unit!r} (accepted: {', '.join(u.value for u in MetricUnit)})"
            ) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MetricsValidationError(f"metric {name}: value must be a finite number, not {value!r}")
        if name in self._metrics:
            known_unit, values = self._metrics[name]
            if known_unit is not unit:
                raise MetricsValidationError(f"metric {name}: unit {unit.value} differs from {known_unit.value}")
            if len(values) >= MAX_VALUES:
                raise MetricsValidationError(f"metric {name}: more than {MAX_VALUES} values in one line")
            values.append(value)
        else:
            self._metrics[name] = (unit, [value])

    def add_dimension(self, name: str, value: str) -> None:
        _check_name("dimension", name)
        if not isinstance(value, str) or not value.strip():
            raise MetricsValidationError(f"dimension {name}: value must be a non-empty string, not {value!r}")
        if len(value) > 1024:
            raise MetricsValidationError(f"dimension {name}: value longer than 1024 characters")
        if name not in self._dimensions and len(self._dimensions) >= MAX_DIMENSIONS:
            raise MetricsValidationError(f"more than {MAX_DIMENSIONS} dimensions")
        self._dimensions[name] = value

    def add_metadata(self, key: str, value: Any) -> None:
        """A searchable property of the log line that is not a metric or dimension."""
        _check_name("metadata", key)
        if key == "_aws" or key in self._dimensions or key in self._metrics:
            raise MetricsValidationError(f"metadata key {key!r} collides with a metric, dimension or '_aws'")
        self._metadata[key] = value

    def serialize(self, metric_names: Iterable[str] | None = None) -> dict[str, Any]:
        """One EMF document for ``metric_names`` (default: all, which must be at most
        ``MAX_METRICS``)."""
        if not self.namespace or not isinstance(self.namespace, str):
            raise MetricsValidationError("refusing to serialise metrics without a namespace")
        if self.namespace.startswith("AWS/"):
            raise MetricsValidationError(f"namespace {self.namespace!r}: 'AWS/' namespaces are reserved for AWS services")
        names = list(self._metrics if metric_names is None else metric_names)
        if not names:
            raise MetricsValidationError("refusing to serialise a line without metrics")
        if len(names) > MAX_METRICS:
            raise MetricsValidationError(f"{len(names)} metrics in one line; at most {MAX_METRICS} (use flush)")
        timestamp = self.timestamp_ms if self.timestamp_ms is not None else int(time.time() * 1000)
        doc: dict[str, Any] = {
            "_aws": {
                "Timestamp": timestamp,
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [list(self._dimensions)] if self._dimensions else [],
                        "Metrics": [{"Name": n, "Unit": self._metrics[n][0].value} for n in names],
                    }
                ],
            }
        }
        doc.update(self._metadata)
        doc.update(self._dimensions)
        for n in names:
            values = self._metrics[n][1]
            doc[n] = values[0] if len(values) == 1 else list(values)
        return doc

    def lines(self) -> list[str]:
        """The EMF lines for every metric, ``MAX_METRICS`` per line."""
        names = list(self._metrics)
        if not names:
            raise MetricsValidationError("refusing to serialise a line without metrics")
        return [
            json.dumps(self.serialize(names[i : i + MAX_METRICS]), default=str, separators=(",", ":"))
            for i in range(0, len(names), MAX_METRICS)
        ]

    def flush(self, stream: IO[str] | None = None) -> int:
        """Write the lines to ``stream`` (default: the current stdout) and forget the
        metrics. Returns the number of lines written."""
        out = stream if stream is not None else sys.stdout
        lines = self.lines()
        for line in lines:
            out.write(line + "\n")
        out.flush()
        self._metrics.clear()
        return len(lines)


def binding_metrics(
    result: "BindingResult",
    *,
    function_name: str | None = None,
    namespace: str = NAMESPACE,
    metadata: Mapping[str, Any] | None = None,
) -> MetricSet:
    """The metric set of one binding's result."""
    dimensions = {"Binding": result.name}
    if function_name:
        dimensions = {"FunctionName": function_name, **dimensions}
    metrics = MetricSet(namespace, dimensions)
    metrics.add_metric("Changes", MetricUnit.COUNT, result.changes)
    metrics.add_metric("Drift", MetricUnit.COUNT, result.drift)
    metrics.add_metric("SourceErrors", MetricUnit.COUNT, 1 if result.source_error else 0)
    metrics.add_metric("Skipped", MetricUnit.COUNT, 1 if result.status == "skipped" else 0)
    metrics.add_metric("SyncDuration", MetricUnit.MILLISECONDS, round(result.duration_ms, 3))
    metrics.add_metadata("Status", result.status)
    metrics.add_metadata("TargetGroup", result.target_group)
    for key, value in (metadata or {}).items():
        if value is not None:
            metrics.add_metadata(key, value)
    return metrics


def emit_report(
    report: "SyncReport",
    *,
    function_name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    stream: IO[str] | None = None,
) -> int:
    """One EMF line per binding of ``report``. Returns the number of lines written (none
    for a report without bindings)."""
    written = 0
    for result in report.bindings:
        written += binding_metrics(result, function_name=function_name, metadata=metadata).flush(stream)
    return written
