"""Passwords in URLs never reach a log line, an error or a report."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cachebridge import logs
from cachebridge.cli import cli
from cachebridge.redact import RedactingStream, redact
from cachebridge.sandbox.supervisor import STATE_FILE, TOKEN_FILE

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"redis://:{SECRET}@cache.example.com:6379/0", "redis://:***@cache.example.com:6379/0"),
        (f"rediss://app:{SECRET}@cache.example.com:6379", "rediss://app:***@cache.example.com:6379"),
        (f"redis://{SECRET}@cache.example.com", "redis://***@cache.example.com"),
        (f"valkeys://default:{SECRET}@10.0.0.5:6380", "valkeys://default:***@10.0.0.5:6380"),
        (f"AWS_ENDPOINT_URL=https://proxy-user:{SECRET}@proxy.internal:8443/", "AWS_ENDPOINT_URL=https://proxy-user:***@proxy.internal:8443/"),
        (f'could not reach "http://admin:{SECRET}@127.0.0.1:4566/"', 'could not reach "http://admin:***@127.0.0.1:4566/"'),
        (f"redis://:{SECRET}@with-at@host:6379", "redis://:***@host:6379"),  # a raw "@" in the password
        (f"redis://:pa/ss{SECRET}@host", "redis://:***@host"),  # a raw "/" in the password
        (f"rediss://h:6379/0?password={SECRET}&ssl_cert_reqs=none", "rediss://h:6379/0?password=***&ssl_cert_reqs=none"),
        (f"https://h/x?X-Amz-Signature={SECRET}", "https://h/x?X-Amz-Signature=***"),
        (f'{{"a":"rediss://u:{SECRET}@h","b":"x@y"}}', '{"a":"rediss://u:***@h","b":"x@y"}'),
        (f"two: redis://:{SECRET}@a and https://u:{SECRET}@b", "two: redis://:***@a and https://u:***@b"),
        ("mail ops@example.com about https://example.com/a@b", "mail ops@example.com about https://example.com/a@b"),
        ("elasticache://orders?role=primary", "elasticache://orders?role=primary"),
        ("ssh://deploy@bastion", "ssh://deploy@bastion"),  # a user name alone is no secret
    ],
)
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert SECRET not in redact(text)


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    """The cachebridge logger writing to a buffer; its handlers and level restored after."""
    logger = logging.getLogger(logs.LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    for handler in saved[0]:
        logger.removeHandler(handler)
    buffer = io.StringIO()
    logs.setup("DEBUG", stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in saved[0]:
            logger.addHandler(handler)
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
        logs.clear_keys()


def test_log_lines_carry_no_password(captured_log: io.StringIO) -> None:
    log = logging.getLogger(logs.LOGGER_NAME)
    logs.append_keys(endpoint=f"https://proxy:{SECRET}@proxy.internal")
    log.info("connecting to %s", f"rediss://app:{SECRET}@cache:6379", extra={"source": f"redis://:{SECRET}@h"})
    try:
        raise ConnectionError(f"cannot reach redis://:{SECRET}@10.0.0.5:6379")
    except ConnectionError:
        log.exception("sync failed")
    lines = [json.loads(line) for line in captured_log.getvalue().splitlines()]
    assert len(lines) == 2
    assert SECRET not in captured_log.getvalue()
    assert lines[0]["message"] == "connecting to rediss://app:***@cache:6379"
    assert lines[0]["source"] == "redis://:***@h" and lines[0]["endpoint"] == "https://proxy:***@proxy.internal"
    assert "redis://:***@10.0.0.5:6379" in lines[1]["exception"]


def test_the_redacting_stream_refuses_bytes_and_hides_nothing_else() -> None:
    inner = io.StringIO()
    stream = RedactingStream(inner)
    with pytest.raises(TypeError):
        stream.write(b"redis://:x@h")  # type: ignore[arg-type]
    stream.write(f"plain text, then redis://:{SECRET}@h\n")
    assert inner.getvalue() == "plain text, then redis://:***@h\n"
    assert not hasattr(stream, "buffer")


def _run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, env=env)
    return result.exit_code, result.output


def test_cli_config_errors_carry_no_password() -> None:
    code, output = _run(["sync", "--source", f"rediss://app:{SECRET}@cache.example.com:6379", "--target-group", "orders"])
    assert code == 2
    assert SECRET not in output
    assert "rediss://app:***@cache.example.com:6379" in output  # the value is still recognisable


def _state(tmp_path: Path, **fields: str) -> Path:
    state = {"status": "ready", "pid": 1, "state_dir": str(tmp_path), "region": "us-east-1", "replication_group": "sandbox",
             "target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/0123456789abcdef",
             "nlb": {"host": "127.0.0.1", "port": 9}, **fields}
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    (tmp_path / TOKEN_FILE).write_text("token")
    return tmp_path


def test_sandbox_errors_carry_no_password(tmp_path: Path) -> None:
    state_dir = _state(tmp_path, control_url=f"http://admin:{SECRET}@127.0.0.1:9")
    code, output = _run(["sandbox", "status", "--state-dir", str(state_dir)])
    assert code == 1
    assert SECRET not in output and "http://admin:***@127.0.0.1:9" in output


def test_drill_errors_carry_no_password(tmp_path: Path) -> None:
    # The drill's AWS client cannot reach an endpoint that carries credentials: botocore
    # names the URL in its error.
    state_dir = _state(tmp_path, control_url="http://127.0.0.1:9", aws_endpoint_url=f"http://admin:{SECRET}@127.0.0.1:9")
    code, output = _run(["drill", "--state-dir", str(state_dir), "--json"], env={"AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"})
    assert code == 1, output
    assert SECRET not in output and "admin:***@127.0.0.1:9" in output


# Anything a URL's password can hold, short of whitespace and quotes (which end a URL in text).
_password = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters="\"'<>`"),
    min_size=6, max_size=40,
).filter(lambda p: "***" not in p)


@settings(max_examples=300, deadline=None)
@given(password=_password, user=st.sampled_from(["", "app", "default"]), scheme=st.sampled_from(["redis", "rediss", "https"]))
def test_no_password_survives_redaction(password: str, user: str, scheme: str) -> None:
    # A password that is also a word of the text around it ("failed") would be found there.
    assume(password not in f'error: "{scheme}://{user}:@cache.example.com:6379/0 @h" failed')
    for text in (f"{scheme}://{user}:{password}@cache.example.com:6379/0", f'error: "{scheme}://{user}:{password}@h" failed'):
        assert password not in redact(text)
