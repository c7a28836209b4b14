"""Split SQL migration files into statements, as PostgreSQL's lexer would see them.

The scanner recognises the token kinds that may contain a ``;`` without ending a
statement: single-quoted strings (with ``''`` and, after an ``E`` prefix, backslash
escapes), double-quoted identifiers, dollar-quoted strings (``$$...$$`` and
``$tag$...$tag$``), ``--`` line comments and nested ``/* ... */`` block comments.

NOTE: a SQL-standard function body (``BEGIN ATOMIC ... END`` without dollar quotes,
PostgreSQL 14 and later) contains bare semicolons and is split wrongly; write such
functions with a dollar-quoted body.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

SegmentKind = Literal["code", "comment", "string", "identifier", "dollar"]

_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_IDENTIFIER_CHAR = re.compile(r"[\w$]")


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a migration file.

    ``line`` is the 1-based line of the statement's first character that is not
    whitespace or a comment. ``index`` is the statement's 1-based position in the
    file. ``text`` runs from that first character to the end of the statement,
    without the terminating ``;``.
    """

    path: str
    line: int
    index: int
    text: str


@dataclass(frozen=True)
class Segment:
    """A run of characters of one token kind: ``text[start:end]``."""

    kind: SegmentKind
    start: int
    end: int


def split_statements(text: str, path: str) -> list[Statement]:
    """Split ``text`` on top-level semicolons and return the non-empty statements.

    A statement that holds only whitespace and comments is dropped. An unterminated
    string, identifier or comment runs to the end of the text, as in PostgreSQL,
    which then rejects the statement when it runs.
    """
    statements: list[Statement] = []
    start: int | None = None
    position = 0

    for segment in scan(text):
        if segment.kind == "comment":
            continue
        if segment.kind != "code":
            start = segment.start if start is None else start
            continue
        for offset in range(segment.start, segment.end):
            char = text[offset]
            if char == ";":
                if start is not None:
                    statements.append(_statement(text, path, start, offset, position))
                    position += 1
                start = None
            elif start is None and not char.isspace():
                start = offset

    if start is not None:
        statements.append(_statement(text, path, start, len(text), position))
    return statements


def _statement(text: str, path: str, start: int, end: int, position: int) -> Statement:
    return Statement(
        path=path,
        line=text.count("\n", 0, start) + 1,
        index=position + 1,
        text=text[start:end].rstrip(),
    )


def scan(text: str) -> Iterator[Segment]:
    """Yield the segments of ``text`` in order; together they cover every character."""
    code_start = 0
    offset = 0
    length = len(text)

    while offset < length:
        kind, end = _token_at(text, offset)
        if kind is None:
            offset += 1
            continue
        if code_start < offset:
            yield Segment("code", code_start, offset)
        yield Segment(kind, offset, end)
        offset = end
        code_start = end

    if code_start < length:
        yield Segment("code", code_start, length)


def _token_at(text: str, offset: int) -> tuple[SegmentKind | None, int]:
    """Return the kind and end of a quoted token or comment starting at ``offset``."""
    char = text[offset]
    pair = text[offset : offset + 2]

    if pair == "--":
        newline = text.find("\n", offset)
        return "comment", len(text) if newline < 0 else newline
    if pair == "/*":
        return "comment", _block_comment_end(text, offset)
    if char == "'":
        return "string", _quoted_end(
            text, offset, "'", _has_escape_prefix(text, offset)
        )
    if char == '"':
        return "identifier", _quoted_end(text, offset, '"', backslashes=False)
    if char == "$" and not _follows_identifier(text, offset):
        match = _DOLLAR_TAG.match(text, offset)
        if match:
            close = text.find(match.group(), match.end())
            return "dollar", len(text) if close < 0 else close + len(match.group())
    return None, offset + 1


def _block_comment_end(text: str, offset: int) -> int:
    depth = 0
    position = offset
    while position < len(text):
        pair = text[position : position + 2]
        if pair == "/*":
            depth += 1
            position += 2
        elif pair == "*/":
            depth -= 1
            position += 2
            if depth == 0:
                return position
        else:
            position += 1
    return len(text)


def _quoted_end(text: str, offset: int, quote: str, backslashes: bool) -> int:
    position = offset + 1
    while position < len(text):
        char = text[position]
        doubled = char == quote and text[position + 1 : position + 2] == quote
        if doubled or (backslashes and char == "\\"):
            position += 2
        elif char == quote:
            return position + 1
        else:
            position += 1
    return len(text)


def _has_escape_prefix(text: str, offset: int) -> bool:
    """Tell whether the quote at ``offset`` opens an ``E'...'`` escape string."""
    if offset == 0 or text[offset - 1] not in "eE":
        return False
    return offset == 1 or not _IDENTIFIER_CHAR.match(text[offset - 2])


def _follows_identifier(text: str, offset: int) -> bool:
    """Tell whether ``$`` at ``offset`` continues an identifier such as ``a$b``."""
    return offset > 0 and bool(_IDENTIFIER_CHAR.match(text[offset - 1]))


def strip_comments(text: str) -> str:
    """Return ``text`` with each comment replaced by spaces, keeping line breaks.

    Offsets and line numbers of the remaining characters stay the same.
    """
    return _replace(text, {"comment"})


def mask_literals(text: str) -> str:
    """Return ``text`` with comments and the contents of string literals blanked.

    Quotes stay in place and the body of each string or dollar-quoted string becomes
    spaces, so keyword searches cannot match inside literals or function bodies.
    Quoted identifiers are kept. Offsets and line numbers stay the same.
    """
    return _replace(text, {"comment", "string", "dollar"})


def _replace(text: str, kinds: set[str]) -> str:
    parts = []
    for segment in scan(text):
        piece = text[segment.start : segment.end]
        if segment.kind in kinds:
            piece = _blank(piece, keep_quotes=segment.kind != "comment")
        parts.append(piece)
    return "".join(parts)


def _blank(piece: str, *, keep_quotes: bool) -> str:
    blanked = re.sub(r"[^\n]", " ", piece)
    if keep_quotes and piece:
        return piece[0] + blanked[1:-1] + piece[-1] if len(piece) > 1 else piece
    return blanked


_OUTSIDE_TRANSACTION = re.compile(
    r"""^\s*(?:
        CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\b
      | DROP\s+INDEX\s+CONCURRENTLY\b
      | REINDEX\b[^;]*\bCONCURRENTLY\b
      | VACUUM\b
      | (?:CREATE|DROP)\s+(?:DATABASE|TABLESPACE)\b
      | ALTER\s+SYSTEM\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_TRANSACTION_CONTROL = re.compile(
    r"^\s*(?:BEGIN|COMMIT|ROLLBACK|END|ABORT|START\s+TRANSACTION|SAVEPOINT"
    r"|RELEASE|PREPARE\s+TRANSACTION|COMMIT\s+PREPARED)\b",
    re.IGNORECASE,
)


def runs_outside_transaction(text: str) -> bool:
    """Tell whether PostgreSQL rejects this statement inside a transaction block.

    These are CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY, REINDEX ...
    CONCURRENTLY, VACUUM, CREATE or DROP DATABASE, CREATE or DROP TABLESPACE and
    ALTER SYSTEM.
    """
    return bool(_OUTSIDE_TRANSACTION.match(mask_literals(text)))


def is_transaction_control(text: str) -> bool:
    """Tell whether the statement begins, ends or marks a transaction itself."""
    return bool(_TRANSACTION_CONTROL.match(mask_literals(text)))
