"""`POST …/action` bodies: exactly one key naming the action; its value validated by a model."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cinderblock.model.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def split_action(body: Any) -> tuple[str, Any]:
    if not isinstance(body, dict) or len(body) != 1:
        raise InvalidInput("Malformed request body")
    return next(iter(body.items()))


def unknown_action(name: str) -> InvalidInput:
    return InvalidInput(f"There is no such action: {name}. Verify the request body and Content-Type header "
                        f"and try again.")


def parse(model: type[M], value: Any, action: str) -> M:
    """Null and {} are the same for argument-less actions (clients send either)."""
    try:
        return model.model_validate({} if value is None else value)
    except ValidationError as error:
        first = error.errors()[0]
        field = "/".join(str(part) for part in (action, *first.get("loc", ())))
        raise InvalidInput(f"Invalid input for field/attribute {field}. Value: {first.get('input')!r}. "
                           f"{first.get('msg', '')}") from None


Handler = Callable[..., Any]
