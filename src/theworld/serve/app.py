"""The FastAPI app of `theworld serve`: `create_app(settings)` loads the model and wires the endpoints, the API key,
the body limit, the errors and a log line per request (method, path, status, milliseconds)."""

import logging
import time
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from theworld.modeling.modeling_theworld import TheWorld
from theworld.serve import audio, chat, models, page, videos
from theworld.serve.auth import require_api_key
from theworld.serve.engine import Engine
from theworld.serve.errors import install_error_handlers
from theworld.serve.limits import BodyLimit
from theworld.serve.settings import ServerSettings

__all__ = ["create_app"]

logger = logging.getLogger("theworld.serve")


def create_app(settings: ServerSettings, model: TheWorld | None = None) -> FastAPI:
    """The server's app for `settings`, serving `model` if given (else `settings.model`, loaded here)."""
    engine = Engine(model, settings) if model is not None else Engine.load(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.batcher.start()
        yield
        engine.batcher.stop()

    # No /docs or /openapi.json: with an API key set, only /health and the page answer without it.
    app = FastAPI(title="TheWorld", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings, app.state.engine = settings, engine
    install_error_handlers(app)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(RequestLog)  # added last, so it runs first and logs the body limit's refusals too

    @app.get("/health")
    async def health(request: Request) -> dict:
        return {"status": "ok", "model": settings.model, "queued": engine.batcher.queued, **engine.batcher.stats}

    app.include_router(page.router)  # the page itself needs no key: it asks for one and sends it
    guarded = [Depends(require_api_key)]
    for module in (models, chat, audio, videos):
        app.include_router(module.router, dependencies=guarded)
    return app


class RequestLog:
    """One log line per request: method, path, status and milliseconds (a stream's when it ends)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            logger.info("%s %s %d %.0f ms", scope["method"], scope["path"], status, elapsed)
