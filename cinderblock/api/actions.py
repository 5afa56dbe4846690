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


def invalid_body(where: str, value: Any, error: ValidationError) -> InvalidInput:
    """Cinder's request-schema message for the first problem of `value`, the object under `where`.
    Keys the object does not take (reported after any other problem, e.g. a required key missing) are
    named as jsonschema does (additionalProperties: false)."""
    problems = error.errors()
    extra = [str(p["loc"][-1]) for p in problems if p.get("type") == "extra_forbidden" and p.get("loc")]
    if extra and len(extra) == len(problems):
        names = ", ".join(repr(key) for key in extra)
        return InvalidInput(f"Invalid input for field/attribute {where}. Value: {value!r}. Additional properties "
                            f"are not allowed ({names} {'was' if len(extra) == 1 else 'were'} unexpected)")
    first = next(p for p in problems if p.get("type") != "extra_forbidden")
    field = "/".join(str(part) for part in (where, *first.get("loc", ())))
    return InvalidInput(f"Invalid input for field/attribute {field}. Value: {first.get('input')!r}. "
                        f"{first.get('msg', '')}")


def parse(model: type[M], value: Any, action: str) -> M:
    """Null and {} are the same for argument-less actions (clients send either)."""
    try:
        return model.model_validate({} if value is None else value)
    except ValidationError as error:
        raise invalid_body(action, value, error) from None


Handler = Callable[..., Any]
