"""Logging: configured once, stdlib records rendered like ours, secrets redacted."""

from __future__ import annotations

import logging

import pytest
import structlog

from runestone.logging import REDACTED, configure_logging, redact, redact_text


def test_secret_keys_are_redacted_at_any_depth() -> None:
    event = redact(
        None,
        "info",
        {
            "event": "request",
            "api_key": "sk-live-1234567890abcdef",
            "headers": {"Authorization": "Bearer abc.def", "x-api-key": "k", "accept": "json"},
            "usage": {"prompt_tokens": 12, "max_tokens": 5},
        },
    )
    assert event["api_key"] == REDACTED
    assert event["headers"] == {"Authorization": REDACTED, "x-api-key": REDACTED, "accept": "json"}
    assert event["usage"] == {"prompt_tokens": 12, "max_tokens": 5}, "token counts are not secrets"


def test_secrets_inside_free_text_are_redacted() -> None:
    text = "upstream said: bad key sk-proj-ABCDEFGH12345678 sent as Bearer tok_123.x"
    cleaned = redact_text(text)
    assert "ABCDEFGH12345678" not in cleaned
    assert "tok_123.x" not in cleaned
    assert cleaned.count(REDACTED) == 2


def test_stdlib_records_and_structlog_events_render_the_same_way_without_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    handler = logging.getLogger().handlers[0]
    # pytest's capture replaced stderr after the handler was made: point it at the current one.
    assert isinstance(handler, logging.StreamHandler)
    import sys

    handler.setStream(sys.stderr)
    logging.getLogger("pykka").warning("stdlib says %s", "Bearer secret-token-value")
    structlog.get_logger("runestone.test").warning("ours", api_key="sk-abcdefghijklmnop")
    err = capsys.readouterr().err
    assert "secret-token-value" not in err
    assert "sk-abcdefghijklmnop" not in err
    lines = [line for line in err.splitlines() if "stdlib says" in line or "ours" in line]
    assert len(lines) == 2
    assert all("[warning" in line for line in lines), lines


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging("LOUD")
