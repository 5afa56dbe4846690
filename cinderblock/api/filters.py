"""List filter values: the small grammar of the forms Cinder's filters take, parsed without `ast`.

Cinder passes each filter value through `ast.literal_eval` and keeps the text when that fails, so
`size=1` is the number 1, `status=['available','error']` a list (an IN filter) and
`metadata={'k':'v'}` a dict. This module accepts the same forms, with limits:

    value   := text | literal
    literal := string | number | 'True' | 'False' | 'None' | list | tuple | set | dict
    string  := '…' | "…"                    (backslash escapes \\ \' \" \n \t \r)
    number  := [+-] digits ['.' digits] [(e|E) [+-] digits]
    list    := '[' [literal {',' literal} [',']] ']'      tuple: the same in ( )
    set     := '{' literal {',' literal} [','] '}'        dict: '{' [key ':' literal {, …}] '}'

A value that is not a literal is the text itself, as in Cinder. A value that starts like a structure
(`{`, `[`, `(`) must be a well-formed one, nested at most MAX_DEPTH deep, with hashable keys and set
members (strings, numbers, booleans, None, tuples of those); a number takes one sign. Anything else is a
400 naming the filter, where `literal_eval` would raise TypeError, MemoryError or RecursionError (500s).
"""
from __future__ import annotations

import re
from typing import Any

from cinderblock.model.errors import InvalidInput

MAX_DEPTH = 16
_OPENERS = "[({"
_CLOSERS = {"[": "]", "(": ")", "{": "}"}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_WORDS: dict[str, Any] = {"True": True, "False": False, "None": None}


class _Malformed(Exception):
    """Inside the parser only: why the text is not a literal of the grammar."""


class _NotLiteral(Exception):
    """Inside the parser only: the text is plain text (not a literal at all)."""


def _hashable(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_hashable(item) for item in value)
    return value is None or isinstance(value, (str, int, float, bool))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def literal(self, depth: int) -> Any:
        self.skip_space()
        char = self.peek()
        if char in _OPENERS and char:
            if depth >= MAX_DEPTH:
                raise _Malformed(f"nested more than {MAX_DEPTH} deep")
            return self.structure(char, depth + 1)
        if char in ("'", '"'):
            return self.string(char)
        return self.scalar()

    def string(self, quote: str) -> str:
        self.pos += 1
        parts: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(parts)
            if char == "\\" and self.pos + 1 < len(self.text):
                following = self.text[self.pos + 1]
                parts.append(_ESCAPES.get(following, "\\" + following))
                self.pos += 2
                continue
            parts.append(char)
            self.pos += 1
        raise _Malformed("a string is not closed")

    def scalar(self) -> Any:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",:]}) \t":
            self.pos += 1
        word = self.text[start:self.pos]
        if word in _WORDS:
            return _WORDS[word]
        number = _number(word)
        if number is None:
            raise _NotLiteral(word)
        return number

    def structure(self, opener: str, depth: int) -> Any:
        closer = _CLOSERS[opener]
        self.pos += 1
        items: list[Any] = []
        pairs: list[tuple[Any, Any]] = []
        kind = {"[": "list", "(": "tuple", "{": ""}[opener]  # "" until a brace's first item says set or dict
        trailing_comma = False
        while True:
            self.skip_space()
            if self.peek() == closer:
                self.pos += 1
                break
            if not self.peek():
                raise _Malformed(f"'{opener}' is not closed")
            item = self._item(depth)
            self.skip_space()
            if opener == "{" and self.peek() == ":" and kind in ("", "dict"):
                self.pos += 1
                if not _hashable(item):
                    raise _Malformed("a dict key must be a string, number, boolean, None or tuple")
                pairs.append((item, self._item(depth)))
                kind = "dict"
            elif kind == "dict":
                raise _Malformed("a dict item needs 'key: value'")
            else:
                if opener == "{":
                    if not _hashable(item):
                        raise _Malformed("a set member must be a string, number, boolean, None or tuple")
                    kind = "set"
                items.append(item)
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
                trailing_comma = True
                continue
            trailing_comma = False
            self.skip_space()
            if self.peek() != closer:
                raise _Malformed(f"expected ',' or '{closer}'")
        if kind == "list":
            return items
        if kind == "tuple":
            # `(1)` is 1, `(1,)` a tuple, as in Python.
            return items[0] if len(items) == 1 and not trailing_comma else tuple(items)
        if kind == "set":
            return set(items)
        return dict(pairs)

    def _item(self, depth: int) -> Any:
        try:
            return self.literal(depth)
        except _NotLiteral as error:
            raise _Malformed(f"{str(error)[:40]!r} is not a string, number, True, False or None") from None


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,4})?", re.ASCII)
_INT_DIGITS = 4000  # int() refuses longer digit strings


def _number(word: str) -> int | float | None:
    """`[+-]digits[.digits][e[+-]digits]` (also `.5`, `5.`); None if the word is not one."""
    if not _NUMBER.fullmatch(word):
        return None
    if word.lstrip("+-").isdigit():
        return int(word) if len(word) <= _INT_DIGITS else None
    return float(word)


def parse_value(name: str, text: str) -> Any:
    """The filter value `text` of filter `name`: a literal of the grammar above, or the text itself."""
    stripped = text.strip(" \t")
    if not stripped:
        return text
    sign_run = len(stripped) - len(stripped.lstrip("+-"))
    if sign_run > 1 and stripped.lstrip("+-")[:1].isdigit():
        raise _invalid(name, "a number takes at most one sign")
    parser = _Parser(stripped)
    try:
        value = parser.literal(0)
        parser.skip_space()
        if parser.pos != len(stripped):
            if stripped[0] in _OPENERS:
                raise _Malformed("unexpected text after the value")
            return text
        return value
    except _NotLiteral:
        return text
    except _Malformed as error:
        if stripped[0] in _OPENERS:
            raise _invalid(name, str(error)) from None
        return text  # e.g. `'abc` (an unclosed quote): text, as in Cinder


def _invalid(name: str, reason: str) -> InvalidInput:
    return InvalidInput(f"Invalid input received: Invalid value for filter {name!r}: {reason}.")
