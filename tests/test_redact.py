"""Redaction of secrets from text before it is shown or stored."""

from __future__ import annotations

import pytest

from daw.redact import redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgresql://app:hunter2pw@127.0.0.1/db", "hunter2pw"),
        ("host=127.0.0.1 password=hunter2pw dbname=x", "hunter2pw"),
        ("password='a b c'", "a b c"),
        ('api_key: "k-123-456"', "k-123-456"),
        ("TOKEN=abc.def", "abc.def"),
    ],
)
def test_redact_masks_secret(text, secret):
    masked = redact(text)
    assert secret not in masked
    assert "***" in masked


def test_redact_keeps_user_and_host():
    masked = redact("postgresql://app:pw@db.internal:5432/prod")
    assert masked == "postgresql://app:***@db.internal:5432/prod"


def test_redact_leaves_plain_text():
    assert redact("lint failed in app.py:3") == "lint failed in app.py:3"


def test_redact_keeps_quotes():
    assert redact("password: 'hunter2'") == "password: '***'"
