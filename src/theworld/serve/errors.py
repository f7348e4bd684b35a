"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`: 4xx for the client's faults (bad
input never gets a 500), and the exception handlers that turn every failure into that shape."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

__all__ = ["APIError", "error_body", "install_error_handlers", "too_large"]

logger = logging.getLogger("theworld.serve")

_TYPES = {401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error"}


class APIError(Exception):
    """A refusal: HTTP status, one line naming the problem and the fix, and the request field at fault."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(self.status, self.message, self.param, self.code), status_code=self.status)


def too_large(what: str, size: str, limit: str, param: str | None = None) -> APIError:
    """A 413 naming the limit and its flag: 'image pixels: 5000x5000 is over the limit: the limit is ...'."""
    return APIError(413, f"{what}: {size} is too large; {limit}", param, "limit_exceeded")


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _field(location: tuple) -> str | None:
    """('body', 'messages', 0, 'content', 'list[...]', 0, 'input_audio', 'input_audio', 'format') ->
    'messages[0].content[0].input_audio.format': pydantic's names of union branches and tags left out."""
    text, previous = "", None
    for part in location:
        if part in ("body", "query", "path", "header") or "[" in str(part) or part == previous:
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        previous = part
    return text or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def refused(request: Request, error: APIError) -> JSONResponse:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # Of a union's failed branches, the deepest names the field at fault (not "content should be a string").
        first = max(error.errors(), key=lambda e: len(e.get("loc", ())))
        if first.get("type") == "json_invalid":  # its loc is a character offset, not a field
            where = first.get("loc", ("body", "?"))[-1]
            return APIError(
                400, f"the request body is not valid JSON (at character {where}); send a JSON object"
            ).response()
        param = _field(tuple(first.get("loc", ())))
        message = first.get("msg", "invalid request")
        return APIError(400, f"{param}: {message}" if param else message, param).response()

    @app.exception_handler(HTTPException)
    async def http(request: Request, error: HTTPException) -> JSONResponse:
        return APIError(error.status_code, str(error.detail)).response()

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, error: ValueError) -> JSONResponse:
        # The library raises ValueError (MediaError among them) for input it cannot use, with a one-line fix.
        return APIError(400, str(error).strip().splitlines()[0] or type(error).__name__).response()

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return APIError(500, f"internal error: {type(error).__name__}; see the server log").response()
