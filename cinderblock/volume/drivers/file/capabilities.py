"""The file driver's `extra_capabilities` option: keys every pool of the backend reports."""
from __future__ import annotations

import json
from typing import Any

from cinderblock.model.errors import DriverError


def parse_extra_capabilities(text: str) -> dict[str, Any]:
    """`extra_capabilities` → dict; DriverError naming the option when it cannot be read."""
    text = (text or "").strip()
    if not text:
        return {}
    try:
        if text.startswith("{"):
            parsed = json.loads(text)
            if isinstance(parsed, dict):
                return parsed
            raise ValueError("not an object")
        pairs = [item.split(":", 1) for item in text.split(",") if item.strip()]
        if any(len(pair) != 2 or not pair[0].strip() for pair in pairs):
            raise ValueError("an entry is not key:value")
        return {key.strip(): _scalar(value.strip()) for key, value in pairs}
    except ValueError as error:
        raise DriverError(f"extra_capabilities {text!r} cannot be read ({error}): use 'key:value,...' "
                          f"or a JSON object") from None


def _scalar(value: str) -> Any:
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, (bool, int, float)) else value
