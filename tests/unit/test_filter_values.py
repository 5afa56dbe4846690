"""The filter-value grammar (api/filters.py): Cinder's literal forms, text otherwise, 400 for broken structures."""
from __future__ import annotations

from typing import Any

import pytest

from cinderblock.api.filters import MAX_DEPTH, parse_value
from cinderblock.model.errors import InvalidInput


@pytest.mark.parametrize(("text", "value"), [
    ("1", 1), ("-1", -1), ("+2", 2), ("1.5", 1.5), ("1e3", 1000.0), ("True", True), ("False", False),
    ("None", None), ("'a b'", "a b"), ('"x"', "x"), (r"'it\'s'", "it's"), ("[1, 'a']", [1, "a"]),
    ("['a', 'b',]", ["a", "b"]), ("(1,)", (1,)), ("(1)", 1), ("{'k': 'v'}", {"k": "v"}), ("{1, 2}", {1, 2}),
    ("{}", {}), ("[]", []), ("{(1, 2): [3, {'a': None}]}", {(1, 2): [3, {"a": None}]}),
    # Not a literal: the text itself, as Cinder keeps it when literal_eval fails.
    ("available", "available"), ("a b", "a b"), ("1 2", "1 2"), ("'open", "'open"), ("1_0", "1_0"),
    ("gt:2024-01-01", "gt:2024-01-01"), ("", ""), ("-", "-"), ("9" * 5000, "9" * 5000),
])
def test_cinder_forms(text: str, value: Any) -> None:
    assert parse_value("f", text) == value


@pytest.mark.parametrize("text", [
    "{{}}", "{[1]:2}", "{[]}", "{{'a': 1}: 2}", "-" * 100_000 + "1", "--1", "+-1",
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "[" * 100_000, "{abc}", "[1 2]", "{'a': 1, 2}", "[",
    "{'k': }", "(1, [2)",
])
def test_broken_structures_are_400_naming_the_filter(text: str) -> None:
    # literal_eval raises TypeError, MemoryError or RecursionError on the first ones (500s before).
    with pytest.raises(InvalidInput) as raised:
        parse_value("volume_id", text)
    assert raised.value.message.startswith("Invalid input received: Invalid value for filter 'volume_id': ")
