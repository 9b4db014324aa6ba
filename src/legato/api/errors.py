"""The one place where Legato's exception tree becomes HTTP status codes."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from legato import errors

STATUS: tuple[tuple[type[errors.LegatoError], int], ...] = (
    (errors.PayloadTooLarge, 413),
    (errors.InvalidInput, 422),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.Forbidden, 403),
    (errors.Unauthorized, 401),
    (errors.Retryable, 503),
    (errors.ProviderError, 502),
)


def status_for(exc: errors.LegatoError) -> int:
    """The HTTP status for an error of the tree (most specific class first)."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response serialised with orjson."""
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def install(app: FastAPI) -> None:
    """Map the exception tree and FastAPI's own validation errors to JSON answers."""

    async def legato_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.LegatoError)
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return json_response(exc.to_dict(), status, headers)

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {
                "path": "$." + ".".join(str(p) for p in e["loc"][1:]) if len(e["loc"]) > 1 else "$",
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"path": "$", "message": "invalid request"}
        body = {
            "error": "InvalidInput",
            "message": f"{first['path']}: {first['message']}",
            "path": first["path"],
            "problems": problems,
        }
        return json_response(body, 422)

    app.add_exception_handler(errors.LegatoError, legato_error)
    app.add_exception_handler(RequestValidationError, validation_error)
