import io
import json
import math

import pytest

from cachebridge.metrics import (
    MAX_METRICS,
    NAMESPACE,
    MetricSet,
    MetricsValidationError,
    MetricUnit,
    binding_metrics,
    emit_report,
)
from cachebridge.sync import BindingResult, SyncReport, Trigger
from cachebridge.targets import Target


def emf_lines(out: str) -> list[dict]:
    docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [d for d in docs if "_aws" in d]


def result(name="orders-primary", **kw) -> BindingResult:
    r = BindingResult(name, "dns://master.orders.abc123.use1.cache.amazonaws.com", "orders-primary", 6379)
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def assert_valid_emf(doc: dict) -> None:
    """What CloudWatch needs to extract metrics from a log line."""
    meta = doc["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    (directive,) = meta["CloudWatchMetrics"]
    assert not directive["Namespace"].startswith("AWS/")
    assert 1 <= len(directive["Metrics"]) <= MAX_METRICS
    for dimension_set in directive["Dimensions"]:
        for key in dimension_set:
            assert isinstance(doc[key], str) and doc[key]
    for metric in directive["Metrics"]:
        assert metric["Unit"] in {u.value for u in MetricUnit}
        values = doc[metric["Name"]]
        for v in values if isinstance(values, list) else [values]:
            assert isinstance(v, (int, float)) and math.isfinite(v)


def test_binding_line_has_the_four_metrics_with_units_and_dimensions(capsys):
    r = result(
        status="changed",
        register=(Target("10.0.1.20", 6379),),
        deregister=(Target("10.0.1.10", 6379),),
        drift=2,
        duration_ms=812.3456,
    )
    assert binding_metrics(r, function_name="cachebridge-orders").flush() == 1
    (doc,) = emf_lines(capsys.readouterr().out)
    assert_valid_emf(doc)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "CacheBridge" == NAMESPACE
    assert directive["Dimensions"] == [["FunctionName", "Binding"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "Changes": "Count",
        "Drift": "Count",
        "SourceErrors": "Count",
        "Skipped": "Count",
        "SyncDuration": "Milliseconds",
    }
    assert doc["Binding"] == "orders-primary"
    assert doc["FunctionName"] == "cachebridge-orders"
    assert doc["Changes"] == 2
    assert doc["Drift"] == 2
    assert doc["SourceErrors"] == 0
    assert doc["Skipped"] == 0
    assert doc["SyncDuration"] == pytest.approx(812.346)
    assert doc["Status"] == "changed"
    assert doc["TargetGroup"] == "orders-primary"


def test_without_function_name_the_binding_is_the_only_dimension(capsys):
    binding_metrics(result(status="in_sync")).flush()
    (doc,) = emf_lines(capsys.readouterr().out)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Binding"]]
    assert "FunctionName" not in doc


def test_source_error_counts_one_and_a_dry_run_changes_nothing(capsys):
    binding_metrics(result(status="error", source_error=True, error="dns://...: NXDOMAIN")).flush()
    binding_metrics(result(status="dry_run", register=(Target("10.0.1.20", 6379),), drift=1)).flush()
    error, dry = emf_lines(capsys.readouterr().out)
    assert error["SourceErrors"] == 1 and error["Changes"] == 0 and error["Status"] == "error"
    assert dry["Changes"] == 0 and dry["Drift"] == 1 and dry["SourceErrors"] == 0


def test_emit_report_writes_one_line_per_binding_with_metadata(capsys):
    report = SyncReport([result("a", status="in_sync"), result("b", status="changed", drift=1)], Trigger(kind="schedule"))
    n = emit_report(report, function_name="fn", metadata={"Trigger": "schedule", "RequestId": "req-1", "Event": None})
    docs = emf_lines(capsys.readouterr().out)
    assert n == 2
    assert [d["Binding"] for d in docs] == ["a", "b"]
    for d in docs:
        assert_valid_emf(d)
        assert d["Trigger"] == "schedule" and d["RequestId"] == "req-1"
        assert "Event" not in d


def test_emit_report_without_bindings_writes_nothing(capsys):
    assert emit_report(SyncReport([])) == 0
    assert capsys.readouterr().out == ""


def test_repeated_metric_values_become_a_list():
    m = MetricSet(dimensions={"Binding": "b"})
    m.add_metric("Changes", MetricUnit.COUNT, 1)
    m.add_metric("Changes", "Count", 3)
    doc = m.serialize()
    assert doc["Changes"] == [1, 3]
    assert doc["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "Changes", "Unit": "Count"}]


def test_more_than_100_metrics_are_split_into_lines():
    m = MetricSet(dimensions={"Binding": "b"})
    for i in range(MAX_METRICS + 5):
        m.add_metric(f"M{i}", MetricUnit.COUNT, i)
    with pytest.raises(MetricsValidationError, match="at most 100"):
        m.serialize()
    out = io.StringIO()
    assert m.flush(out) == 2
    first, second = emf_lines(out.getvalue())
    assert len(first["_aws"]["CloudWatchMetrics"][0]["Metrics"]) == 100
    assert len(second["_aws"]["CloudWatchMetrics"][0]["Metrics"]) == 5
    assert second["M104"] == 104 and second["Binding"] == "b"
    assert "M0" not in second


@pytest.mark.parametrize("namespace", [None, ""])
def test_refuses_to_serialise_without_a_namespace(namespace):
    m = MetricSet(namespace)
    m.add_metric("Changes", MetricUnit.COUNT, 1)
    with pytest.raises(MetricsValidationError, match="without a namespace"):
        m.serialize()


def test_refuses_an_aws_namespace():
    m = MetricSet("AWS/NetworkELB")
    m.add_metric("Changes", MetricUnit.COUNT, 1)
    with pytest.raises(MetricsValidationError, match="reserved"):
        m.serialize()


def test_refuses_to_serialise_or_flush_without_metrics(capsys):
    m = MetricSet(dimensions={"Binding": "b"})
    with pytest.raises(MetricsValidationError, match="without metrics"):
        m.serialize()
    with pytest.raises(MetricsValidationError, match="without metrics"):
        m.flush()
    assert capsys.readouterr().out == ""


def test_flush_forgets_the_metrics(capsys):
    m = MetricSet(dimensions={"Binding": "b"})
    m.add_metric("Changes", MetricUnit.COUNT, 1)
    m.flush()
    with pytest.raises(MetricsValidationError):
        m.flush()
    assert len(emf_lines(capsys.readouterr().out)) == 1


@pytest.mark.parametrize(
    ("name", "unit", "value", "says"),
    [
        ("", "Count", 1, "non-empty"),
        ("Changes", "Widgets", 1, "unknown unit"),
        ("Changes", "Count", float("nan"), "finite"),
        ("Changes", "Count", float("inf"), "finite"),
        ("Changes", "Count", "1", "finite"),
        ("Changes", "Count", True, "finite"),
        ("x" * 256, "Count", 1, "longer than 255"),
    ],
)
def test_invalid_metrics_are_refused(name, unit, value, says):
    with pytest.raises(MetricsValidationError, match=says):
        MetricSet().add_metric(name, unit, value)


def test_a_metric_keeps_one_unit():
    m = MetricSet()
    m.add_metric("SyncDuration", MetricUnit.MILLISECONDS, 1)
    with pytest.raises(MetricsValidationError, match="differs"):
        m.add_metric("SyncDuration", MetricUnit.SECONDS, 1)


def test_dimension_limits():
    with pytest.raises(MetricsValidationError, match="non-empty string"):
        MetricSet(dimensions={"Binding": ""})
    m = MetricSet(dimensions={f"D{i}": "v" for i in range(30)})
    with pytest.raises(MetricsValidationError, match="more than 30"):
        m.add_dimension("D30", "v")


def test_metadata_cannot_shadow_the_emf_envelope():
    m = MetricSet(dimensions={"Binding": "b"})
    with pytest.raises(MetricsValidationError, match="collides"):
        m.add_metadata("_aws", {})
    with pytest.raises(MetricsValidationError, match="collides"):
        m.add_metadata("Binding", "x")
