"""`POST /v1/chat/completions`: the request is read and checked in a request thread, answered by the batcher, and
returned whole or streamed as Server-Sent Events ending `data: [DONE]`. A client that leaves a stream ends its row."""

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from theworld.serve.engine import Engine, Prepared
from theworld.serve.errors import APIError, error_body
from theworld.serve.generation import ChatJob
from theworld.serve.models import check_model
from theworld.serve.protocol import (
    AudioOut,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Delta,
    PromptTokensDetails,
    ResponseMessage,
    Usage,
    WorldFrames,
)

__all__ = ["router"]

router = APIRouter()
AUDIO_KEPT_SECONDS = 3600  # `expires_at` of a spoken answer, as OpenAI reports one; the server keeps none


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request):
    engine: Engine = request.app.state.engine
    check_model(body.model, engine.settings)
    prepared = await run_in_threadpool(engine.prepare, body, asyncio.get_running_loop())
    engine.batcher.submit(prepared.job)
    reply = _Reply(body, prepared)
    if body.stream:
        return StreamingResponse(reply.stream(), media_type="text/event-stream")
    try:
        async for event in _events(prepared.job):
            reply.take(event)
    finally:
        prepared.job.cancelled.set()  # ends the row if this handler is cancelled mid-answer
    return JSONResponse(reply.completion().model_dump(exclude_none=True))


async def _events(job: ChatJob) -> AsyncIterator[tuple]:
    while True:
        event = await job.events.get()
        if event[0] == "done":
            return
        if event[0] == "error":
            error = event[1]
            if isinstance(error, APIError):
                raise error
            if isinstance(error, ValueError):
                raise APIError(400, str(error).strip().splitlines()[0]) from None
            raise APIError(500, f"internal error: {type(error).__name__}; see the server log") from None
        yield event


class _Reply:
    """The answer to one request, built from the model thread's events."""

    def __init__(self, body: ChatCompletionRequest, prepared: Prepared):
        self.body, self.prepared = body, prepared
        self.id, self.created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        self.texts = [""] * body.n
        self.reasons: list[str | None] = [None] * body.n
        self.tokens = [0] * body.n
        self.audio: list[AudioOut | None] = [None] * body.n
        self.world: list[WorldFrames] | None = None

    def take(self, event: tuple) -> None:
        kind = event[0]
        if kind == "delta":
            self.texts[event[1]] += event[2]
        elif kind == "finish":
            _, index, reason, tokens, text = event
            self.reasons[index], self.tokens[index], self.texts[index] = reason, tokens, text
        elif kind == "audio":
            _, index, wav = event
            self.audio[index] = AudioOut(
                id=f"audio_{uuid.uuid4().hex}",
                data=base64.b64encode(wav).decode(),
                expires_at=int(time.time()) + AUDIO_KEPT_SECONDS,
                transcript=self.texts[index],
            )
        elif kind == "world":
            self.world = [WorldFrames(image=i, frames=frames) for i, frames in enumerate(event[1])]

    def usage(self) -> Usage:
        prompt = self.prepared.prompt_tokens
        completion = sum(self.tokens)
        details = PromptTokensDetails(world_tokens=self.prepared.world_tokens)
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=details,
        )

    def completion(self) -> ChatCompletion:
        choices = [
            ChatChoice(
                index=i,
                message=ResponseMessage(content=self.texts[i], audio=self.audio[i]),
                finish_reason=self.reasons[i] or "length",
            )
            for i in range(self.body.n)
        ]
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.body.model,
            choices=choices,
            usage=self.usage(),
            world=self.world,
        )

    def _chunk(self, choices: list[ChunkChoice], **fields) -> str:
        chunk = ChatCompletionChunk(id=self.id, created=self.created, model=self.body.model, choices=choices, **fields)
        return f"data: {chunk.model_dump_json(exclude_none=True)}\n\n"

    async def stream(self) -> AsyncIterator[str]:
        """The SSE body: the role, then text deltas as they come, a spoken answer's audio, each choice's finish,
        and with stream_options.include_usage a last chunk with the usage."""
        job, spoken = self.prepared.job, self.body.wants_audio
        try:
            yield self._chunk([ChunkChoice(index=i, delta=Delta(role="assistant", content="")) for i in range(job.n)])
            async for event in _events(job):
                self.take(event)
                kind = event[0]
                if kind == "delta":
                    yield self._chunk([ChunkChoice(index=event[1], delta=Delta(content=event[2]))])
                elif kind == "world":
                    yield self._chunk([], world=self.world)
                elif kind == "finish" and not spoken:
                    yield self._chunk([ChunkChoice(index=event[1], delta=Delta(), finish_reason=event[2])])
                elif kind == "audio":
                    index = event[1]
                    delta = Delta(audio=self.audio[index])
                    yield self._chunk([ChunkChoice(index=index, delta=delta, finish_reason=self.reasons[index])])
            if self.body.stream_options is not None and self.body.stream_options.include_usage:
                yield self._chunk([], usage=self.usage())
            yield "data: [DONE]\n\n"
        except APIError as error:
            yield f"data: {json.dumps(error_body(error.status, error.message, error.param, error.code))}\n\n"
        finally:
            job.cancelled.set()  # the client left, or the answer is complete: either way the row is done
