"""Every limit the server enforces, checked before the work it bounds: the request body while it arrives (a
declared Content-Length first, then the bytes as they come, so an oversize body is never read whole), base64
before it is decoded, image pixels from the file's header, audio seconds and video frames from the container's,
and the request's own max_tokens and n. Each refusal is a
413 or 400 naming the limit and the flag that raises it (`settings.LIMITS`)."""

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from theworld.serve.errors import APIError, error_body, too_large
from theworld.serve.settings import LIMITS, MB, ServerSettings

__all__ = [
    "BodyLimit",
    "check_audio_seconds",
    "check_base64",
    "check_choices",
    "check_max_tokens",
    "check_media_bytes",
    "check_pixels",
    "check_speech_chars",
    "check_video_frames",
]


class _BodyTooLarge(HTTPException):
    """Raised from `receive`: FastAPI passes HTTPExceptions through its body parsing untouched."""


class BodyLimit:
    """ASGI middleware: a body over `--max-request-mb` gets a 413 before the app reads it whole."""

    def __init__(self, app: ASGIApp, settings: ServerSettings):
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.settings.max_request_bytes
        message = self._message()
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > limit:
            status = 413 if declared.isdigit() else 400
            await _reply(send, status, message if status == 413 else "invalid Content-Length header")
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            event = await receive()
            received += len(event.get("body", b""))
            if received > limit:
                raise _BodyTooLarge(413, message)
            return event

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return too_large(
            "request body", f"over {self.settings.max_request_mb:g} MB", _limit("request", self.settings)
        ).message


async def _reply(send: Send, status: int, message: str) -> None:
    body = json.dumps(error_body(status, message, code="limit_exceeded" if status == 413 else None)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _limit(name: str, settings: ServerSettings) -> str:
    return LIMITS[name].describe(settings)


def _megabytes(size: int) -> str:
    return f"{size / MB:.3g} MB"


def check_base64(data: str, settings: ServerSettings, param: str) -> None:
    """Before decoding: base64 of more than `--max-media-mb` bytes is refused by its length alone."""
    longest = 4 * -(-settings.max_media_bytes // 3)
    if len(data) > longest:
        raise too_large("base64 media", f"about {_megabytes(len(data) * 3 // 4)}", _limit("media", settings), param)


def check_media_bytes(size: int, settings: ServerSettings, param: str) -> None:
    """A file:// medium's size, from the file system, before it is read."""
    if size > settings.max_media_bytes:
        raise too_large("media file", _megabytes(size), _limit("media", settings), param)


def check_pixels(width: int, height: int, settings: ServerSettings, param: str) -> None:
    if width * height > settings.max_image_pixels:
        raise too_large("image", f"{width}x{height} pixels", _limit("pixels", settings), param)


def check_audio_seconds(seconds: float, settings: ServerSettings, param: str) -> None:
    if seconds > settings.max_audio_seconds:
        raise too_large("audio", f"{seconds:.1f} seconds", _limit("audio", settings), param)


def check_video_frames(frames: int, settings: ServerSettings, param: str) -> None:
    if frames > settings.max_video_frames:
        raise too_large("video", f"{frames} frames", _limit("frames", settings), param)


def check_max_tokens(max_tokens: int, settings: ServerSettings, param: str) -> None:
    if max_tokens > settings.max_tokens_cap:
        raise APIError(400, f"{param}={max_tokens} is too large; {_limit('tokens', settings)}", param, "limit_exceeded")


def check_choices(n: int, settings: ServerSettings) -> None:
    if n > settings.max_choices:
        raise APIError(400, f"n={n} is too large; {_limit('choices', settings)}", "n", "limit_exceeded")


def check_speech_chars(text: str, settings: ServerSettings) -> None:
    if len(text) > settings.max_speech_chars:
        raise too_large("input", f"{len(text)} characters", _limit("speech", settings), "input")
