"""The one place errors become HTTP: Cinder's fault envelope `{"<name>": {"code", "message"}}`."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from cinderblock.api.microversions import VersionNotAcceptable
from cinderblock.model import errors

LOG = logging.getLogger(__name__)

FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
               501: "notImplemented", 503: "serviceUnavailable"}

GENERIC_500 = "The server has either erred or is incapable of performing the requested operation."

_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (errors.NotFound, 404),
    (errors.VersionNotFound, 404),
    (errors.Conflict, 409),
    (errors.Invalid, 400),
    (errors.QuotaExceeded, 413),
    (errors.Forbidden, 403),
    (errors.ServiceUnavailable, 503),
)


def fault_body(status: int, message: str) -> dict[str, Any]:
    name = FAULT_NAMES.get(status, "computeFault")
    body: dict[str, Any] = {name: {"code": status, "message": message}}
    if status == 413:
        body[name]["retryAfter"] = "0"
    return body


def fault(status: int, message: str) -> JSONResponse:
    # A message that echoes input must still encode (the middleware refuses lone surrogates, but a
    # message must never be the reason for a 500).
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    headers = {"Retry-After": "0"} if status == 413 else None
    return JSONResponse(fault_body(status, message), status_code=status, headers=headers)


def status_of(error: Exception) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def domain_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, errors.CinderblockError)
    status = status_of(error)
    message = error.message
    if isinstance(error, errors.QuotaExceeded):
        message = f"{error.kind}: {message}"
    if status == 503:
        LOG.warning("503: %s", message)
    if status == 500:
        # A driver's or other internal message may name paths or hosts: log it, answer generically.
        LOG.error("500: %s: %s", type(error).__name__, message)
        message = GENERIC_500
    return fault(status, message)


def not_acceptable(_request: Request, error: Exception) -> JSONResponse:
    return fault(406, str(error))


def validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = error.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return fault(400, "Malformed request body")
    if _request.method == "POST" and _request.url.path.endswith("/action"):
        # An action body is only checked to be an object here (absent, null, a list…): Cinder's
        # action_peek answers every such body the same way.
        return fault(400, "Malformed request body")
    first = problems[0] if problems else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    field = "/".join(location) or "body"
    if first.get("type") == "missing" and not location:
        return fault(400, "Malformed request body: the request has no body.")
    value = first.get("input")
    return fault(400, f"Invalid input for field/attribute {field}. Value: {value!r}. {first.get('msg', '')}")


def http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    message = {404: "The resource could not be found.", 405: "The method is not allowed for this resource."}
    return fault(error.status_code, message.get(error.status_code, str(error.detail)))


def unexpected(_request: Request, error: Exception) -> JSONResponse:
    LOG.exception("unexpected error: %s", error)
    return fault(500, GENERIC_500)


HANDLERS: dict[Any, Any] = {
    errors.CinderblockError: domain_error,
    VersionNotAcceptable: not_acceptable,
    RequestValidationError: validation_error,
    HTTPException: http_error,
    Exception: unexpected,
}
