"""Field types with Cinder's parsing rules."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from cinderblock.model.errors import InvalidInput

_TRUE = {"true", "1", "on", "yes", "y", "t"}
_FALSE = {"false", "0", "off", "no", "n", "f"}


DB_MAX_INT = 2**31 - 1  # Cinder's schema maximum for sizes: what a database INTEGER holds


def parse_size(value: Any) -> int:
    """An integer or a string of digits, from 1 to DB_MAX_INT."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("must be an integer and greater than 0")
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise ValueError("must be an integer and greater than 0")
        value = int(value)
    if value < 1:
        raise ValueError("must be an integer and greater than 0")
    if value > DB_MAX_INT:
        raise ValueError(f"must be an integer less than or equal to {DB_MAX_INT}")
    return int(value)


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("must be a boolean (true/false, yes/no, on/off, 1/0)")


def parse_metadata(value: Any) -> dict[str, str]:
    """Only the shape: lengths and the number of items are the domain's (Cinder's messages, a config)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("must be an object of string keys and values")
    for key, item in value.items():
        if not isinstance(item, str):
            raise ValueError(f"value of {str(key)[:60]!r} must be a string")
    return dict(value)


Size = Annotated[int, BeforeValidator(parse_size)]
Bool = Annotated[bool, BeforeValidator(parse_bool)]
Metadata = Annotated[dict[str, str], BeforeValidator(parse_metadata)]
Name = Annotated[str, Field(max_length=255)]


class Lenient(BaseModel):
    """Tolerates unknown keys; routers reject them from 3.53 on (see `reject_extra`)."""

    model_config = ConfigDict(extra="allow")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def reject_extra(model: BaseModel, strict: bool, where: str) -> None:
    extra = sorted((model.model_extra or {}).keys())
    if strict and extra:
        raise InvalidInput(f"Invalid input for field/attribute {where}. Additional properties are not allowed "
                           f"({', '.join(repr(k) for k in extra)} were unexpected)")
