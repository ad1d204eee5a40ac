"""Errors of the FastAPI apps (admin API, knowledge bases) in the one envelope ``/v1`` uses.

Every handler answers ``{"error": {"message", "type", "param", "code"}}`` in the caller's language
(``Accept-Language``), so a client sees the same shape whichever part of dizuo it calls.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dizuo.errors import DizuoError, InvalidRequest, MethodNotAllowed, RouteNotFound, envelope, pick_language

__all__ = ["error_response", "install_error_handlers"]


def error_response(request: Request, error: DizuoError) -> Response:
    lang = pick_language(request.headers.get("accept-language"))
    return Response(
        error.body(lang), status_code=error.status, headers=error.headers, media_type="application/json"
    )


def _validation(request: Request, exc: RequestValidationError) -> Response:
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"] if part not in ("body", "query", "path")]
    param = ".".join(loc) or None
    message = first["msg"]
    error = InvalidRequest("invalid_param", param=param, reason_zh=message, reason_en=message)
    return error_response(request, error)


def _http(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 405:
        return error_response(
            request, MethodNotAllowed(path=request.url.path, method=request.method, allowed="-")
        )
    if exc.status_code == 404:
        return error_response(request, RouteNotFound(path=request.url.path))
    return Response(
        envelope(str(exc.detail), "api_error", None, None),
        status_code=exc.status_code,
        media_type="application/json",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer dizuo errors, validation errors and unknown routes in the OpenAI envelope."""
    app.add_exception_handler(DizuoError, error_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
