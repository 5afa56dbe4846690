"""Text no database can store, refused once, where requests enter (the middleware calls these).

A NUL character is refused by PostgreSQL in text columns; a lone UTF-16 surrogate (`"\\ud800"` in JSON)
is no Unicode character and cannot be encoded for any database or in a UTF-8 response. Both are found
here in the path, the query string and JSON bodies (keys and values, at any depth), and answered with a
400 naming the field, before any handler runs. Every other check stays with the schemas and routers.
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

# A JSON escape of NUL or of a surrogate, a surrogate's UTF-8-like bytes (json.loads decodes bytes with
# 'surrogatepass'), or a NUL byte (also the mark of UTF-16/32 bodies): only then is the body walked.
_SUSPECT_BODY = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|\xed[\xa0-\xbf]|\x00")
_SHOWN = 60  # characters of an offending value echoed in the message


def text_problem(text: str) -> str | None:
    """What makes `text` unstorable, or None."""
    if "\x00" in text:
        return "NUL characters are not allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "Lone UTF-16 surrogates (no Unicode characters) are not allowed"
    return None


def _shown(value: str) -> str:
    """repr() escapes NUL and surrogates, so the message itself is always encodable."""
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "…")


def _segment(key: str) -> str:
    return key if text_problem(key) is None else _shown(key)[1:-1]


def _field_error(field: str, value: str, problem: str) -> str:
    return f"Invalid input for field/attribute {field or 'body'}. Value: {_shown(value)}. {problem}."


def url_problem(path: str, query_string: bytes) -> str | None:
    """A message for a NUL in the (decoded) path or in a query parameter's name or value, or None."""
    if "\x00" in path:
        return "Invalid input received: The URL path contains a NUL character, which is not allowed."
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8",
                                errors="replace"):
        for text in (key, value):
            problem = text_problem(text)
            if problem is not None:
                return f"Invalid input received: Invalid query parameter {_segment(key)!r}: {problem}."
    return None


def body_problem(body: bytes) -> str | None:
    """A message naming the first field of a JSON body whose key or string value is unstorable, or None.
    A body that is not JSON is left to the handlers (they answer 'Malformed request body')."""
    if not _SUSPECT_BODY.search(body):
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:  # no recursion: the depth of a body is the client's choice
        value, field = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                return _field_error(field, value, problem)
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = text_problem(key)
                if problem is not None:
                    return _field_error(field, key, f"{problem} in keys")
                stack.append((item, f"{field}/{key}" if field else key))
        elif isinstance(value, list):
            stack.extend((item, field) for item in value)
    return None
