"""`POST /v1/audio/speech` (text -> the talker's 16 kHz speech, wav or raw 16-bit pcm, whole or streamed sentence
by sentence) and `POST /v1/audio/transcriptions` (a multipart recording -> the ear's text)."""

import asyncio
import re
import struct
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from theworld.serve.engine import Engine, wav_bytes
from theworld.serve.errors import APIError
from theworld.serve.inputs import read_audio
from theworld.serve.limits import check_media_bytes, check_speech_chars
from theworld.serve.models import check_model
from theworld.serve.protocol import SpeechRequest, Transcription

__all__ = ["router"]

router = APIRouter()
SAMPLING_RATE = 16_000
MEDIA_TYPES = {"wav": "audio/wav", "pcm": "audio/pcm"}


@router.post("/v1/audio/speech")
async def speech(body: SpeechRequest, request: Request):
    engine: Engine = request.app.state.engine
    check_model(body.model, engine.settings)
    check_speech_chars(body.input, engine.settings)
    if engine.speaker is None:
        raise APIError(400, "this model cannot speak (its checkpoint has no talker/)", "model")
    # Spoken a sentence at a time, streamed or not, so both give the same samples and a stream starts early.
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", body.input.strip()) if s]
    media_type = MEDIA_TYPES[body.response_format]
    if body.stream:
        return StreamingResponse(_spoken(engine, sentences, body.response_format), media_type=media_type)
    pieces = [await _speak(engine, sentence) for sentence in sentences]
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    data = wav_bytes(samples) if body.response_format == "wav" else _pcm(samples)
    return Response(data, media_type=media_type)


async def _speak(engine: Engine, text: str) -> np.ndarray:
    return await asyncio.wrap_future(engine.batcher.call(lambda: engine.speak(text)))


async def _spoken(engine: Engine, sentences: list[str], response_format: str) -> AsyncIterator[bytes]:
    if response_format == "wav":
        yield _streaming_wav_header()
    for sentence in sentences:
        yield _pcm(await _speak(engine, sentence))


def _pcm(samples: np.ndarray) -> bytes:
    """Raw 16-bit little-endian mono at 16 kHz."""
    return (np.clip(samples, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()


def _streaming_wav_header() -> bytes:
    """A 16-bit mono wav header whose lengths are unknown (the largest), as streaming encoders write it."""
    unknown = 0xFFFFFFFF
    return (
        struct.pack("<4sI4s", b"RIFF", unknown, b"WAVE")
        + struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, SAMPLING_RATE, SAMPLING_RATE * 2, 2, 16)
        + struct.pack("<4sI", b"data", unknown)
    )


@router.post("/v1/audio/transcriptions", response_model=Transcription)
async def transcriptions(
    request: Request,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form()],
    response_format: Annotated[Literal["json", "text"], Form()] = "json",
):
    engine: Engine = request.app.state.engine
    check_model(model, engine.settings)
    if file.size is not None:
        check_media_bytes(file.size, engine.settings, "file")
    audio = await run_in_threadpool(read_audio, file.file, engine.settings, "file")
    text = await asyncio.wrap_future(engine.batcher.call(lambda: engine.transcribe(audio)))
    if response_format == "text":
        return PlainTextResponse(text)
    return Transcription(text=text)
