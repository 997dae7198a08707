import io
import json
import logging
import re

import pytest

from cachebridge import logs


@pytest.fixture(autouse=True)
def fresh_logger():
    logger = logging.getLogger(logs.LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    logs.clear_keys()
    yield
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in saved[0]:
        logger.addHandler(h)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
    logs.clear_keys()


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_one_json_object_per_line_with_the_standard_fields(capsys):
    log = logs.setup()
    log.info("binding synced", extra={"binding": "orders-primary", "status": "changed", "register": ["10.0.1.20:6379"]})
    (entry,) = lines(capsys.readouterr().out)
    assert list(entry)[:4] == ["level", "message", "timestamp", "logger"]
    assert entry["level"] == "INFO"
    assert entry["message"] == "binding synced"
    assert entry["logger"] == "cachebridge"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["timestamp"])
    assert entry["binding"] == "orders-primary"
    assert entry["status"] == "changed"
    assert entry["register"] == ["10.0.1.20:6379"]
    assert "msg" not in entry and "args" not in entry and "levelno" not in entry


def test_setup_is_idempotent(capsys):
    first = logs.setup()
    second = logs.setup()
    assert first is second
    assert len(first.handlers) == 1
    assert first.propagate is False
    second.warning("once")
    assert len(lines(capsys.readouterr().out)) == 1


def test_child_loggers_use_the_same_format(capsys):
    logs.setup()
    logging.getLogger("cachebridge.sync").info("from %s", "a child", extra={"binding": "b"})
    (entry,) = lines(capsys.readouterr().out)
    assert entry["logger"] == "cachebridge.sync"
    assert entry["message"] == "from a child"
    assert entry["binding"] == "b"


def test_appended_keys_go_on_every_line_until_cleared(capsys):
    log = logs.setup()
    logs.append_keys(request_id="req-1", function_name="cachebridge-orders")
    log.info("one")
    logs.append_keys(function_name=None)
    log.info("two")
    logs.clear_keys()
    log.info("three")
    one, two, three = lines(capsys.readouterr().out)
    assert one["request_id"] == "req-1" and one["function_name"] == "cachebridge-orders"
    assert two["request_id"] == "req-1" and "function_name" not in two
    assert "request_id" not in three
    logs.append_keys(a=1, b=2)
    logs.remove_keys("a")
    assert logs.current_keys() == {"b": 2}


def test_level_from_argument_and_environment(monkeypatch, capsys):
    monkeypatch.setenv("CACHEBRIDGE_LOG_LEVEL", "warning")
    log = logs.setup()
    log.info("hidden")
    log.warning("shown")
    assert [e["message"] for e in lines(capsys.readouterr().out)] == ["shown"]
    logs.setup("DEBUG").debug("now shown")
    assert [e["level"] for e in lines(capsys.readouterr().out)] == ["DEBUG"]


def test_unknown_level_falls_back_to_info(monkeypatch, capsys):
    monkeypatch.setenv("CACHEBRIDGE_LOG_LEVEL", "LOUD")
    log = logs.setup()
    assert log.level == logging.INFO
    (entry,) = lines(capsys.readouterr().out)
    assert entry["level"] == "WARNING" and "LOUD" in entry["message"]


def test_exceptions_stay_on_one_line(capsys):
    log = logs.setup()
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("failed", extra={"binding": "b"})
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    (entry,) = lines(out)
    assert entry["level"] == "ERROR"
    assert entry["exception_name"] == "ValueError"
    assert "bad\nthing" in entry["exception"] and "Traceback" in entry["exception"]


def test_values_that_are_not_json_are_rendered_as_text(capsys):
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    logs.setup().info("odd", extra={"thing": Thing(), "ids": (1, 2)})
    (entry,) = lines(capsys.readouterr().out)
    assert entry["thing"] == "a thing"
    assert entry["ids"] == [1, 2]


def test_explicit_stream():
    stream = io.StringIO()
    logs.setup(stream=stream).error("to the stream")
    (entry,) = lines(stream.getvalue())
    assert entry["message"] == "to the stream"
