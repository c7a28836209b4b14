"""Removal of secrets from text before it is printed, logged or stored."""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@"
)
_ASSIGNMENT = re.compile(
    r"(?i)(?P<key>password|passwd|secret|token|api[_-]?key|access[_-]?key)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s'\"]+)"
)


def redact(text: str) -> str:
    """Return ``text`` with URL passwords and ``key=value`` secrets masked."""
    text = _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)
    return _ASSIGNMENT.sub(_mask_value, text)


def _mask_value(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['key']}{match['sep']}{quote}***{quote}"
