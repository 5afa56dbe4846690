"""Special list filters shared by volume and snapshot listings (parsed here, applied in the domain)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from cinderblock.api import microversions as mv
from cinderblock.api.filters import parse_value
from cinderblock.model.errors import InvalidInput

_TRUE = {"true", "1", "yes", "y", "on", "t"}
_FALSE = {"false", "0", "no", "n", "off", "f"}


def parse_bootable(value: str, version: mv.Version) -> bool:
    text = value.strip().lower()
    if version.at_least(mv.BOOTABLE_STRICT):
        if text not in _TRUE | _FALSE:
            raise InvalidInput(f"Invalid input received: Invalid boolean value for bootable: {value}")
        return text in _TRUE
    return text != "false"


def parse_metadata_filter(value: str) -> dict[str, str]:
    parsed = parse_value("metadata", value)
    if not isinstance(parsed, dict):
        raise InvalidInput(f"Invalid input received: metadata filter must be a dict, e.g. {{'k': 'v'}}, not {value}")
    return {str(k): str(v) for k, v in parsed.items()}


def parse_time_filter(name: str, value: str) -> list[tuple[str, Any]]:
    """`gt:2024-01-01T00:00:00[,lt:...]` (3.60)."""
    conditions = []
    for part in value.split(","):
        op, _, stamp = part.partition(":")
        if op not in ("gt", "gte", "eq", "neq", "lt", "lte") or not stamp:
            raise InvalidInput(f"Invalid input received: Invalid {name} filter {part!r}: use <op>:<iso8601>, "
                               f"op one of gt, gte, eq, neq, lt, lte.")
        try:
            moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"Invalid input received: Invalid time {stamp!r} in {name} filter.") from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
        conditions.append((op, moment))
    return conditions
