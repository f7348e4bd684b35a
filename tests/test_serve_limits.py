"""Bad input and every limit of the server: a 4xx in OpenAI's error shape whose message names the problem (and for
a limit, the flag that raises it), checked before the work it bounds. A row per case: the server's settings, the
request, the status and a fragment of the message."""

import base64
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import soundfile
from support import data_uri, image_part, user_turn

from theworld.media import write_mp4

MODEL = "theworld-tiny"
SCENE = Path(__file__).resolve().parents[1] / "examples" / "toyworld_scene.png"

# Small limits, so that small requests cross them.
TIGHT = {
    "max_request_mb": 0.2,
    "max_media_mb": 0.1,
    "max_image_pixels": 32 * 32,
    "max_audio_seconds": 0.5,
    "max_video_frames": 4,
    "max_tokens_cap": 8,
    "max_choices": 2,
    "max_speech_chars": 10,
}


def image_url(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def recording(seconds: float, format: str = "wav") -> dict:
    buffer = io.BytesIO()
    samples = 0.1 * np.sin(np.arange(int(16_000 * seconds)) / 10).astype(np.float32)
    soundfile.write(buffer, samples, 16_000, format=format.upper())
    data = base64.b64encode(buffer.getvalue()).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": format}}


def video(frames: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        write_mp4(f"{folder}/clip.mp4", np.zeros((frames, 16, 16, 3), dtype=np.uint8), fps=4)
        data = open(f"{folder}/clip.mp4", "rb").read()
    return {"type": "video_url", "video_url": {"url": data_uri(data, "video/mp4")}}


def chat(*parts, **fields) -> dict:
    return {"model": MODEL, "messages": user_turn(*parts), **fields}


@dataclass(frozen=True)
class Row:
    id: str
    request: Callable[[], dict]
    status: int
    fragment: str
    path: str = "/chat/completions"
    settings: dict = field(default_factory=dict)


ROWS = [
    # Media that cannot be used.
    Row("bad-base64", lambda: chat(image_url("data:image/png;base64,@@not base64@@"), "hi"), 400, "invalid base64"),
    Row("wrong-mime", lambda: chat(image_url("data:text/plain;base64,aGVsbG8="), "hi"), 400, "type text/plain"),
    Row("not-an-image", lambda: chat(image_url(data_uri(b"hello", "image/png")), "hi"), 400, "not an image"),
    Row("http-url", lambda: chat(image_url("https://example.com/cat.png"), "hi"), 400, "fetches no URLs"),
    Row("not-base64-uri", lambda: chat(image_url("data:image/png,rawbytes"), "hi"), 400, "must be base64"),
    Row("audio-format", lambda: chat({**recording(0.2), "input_audio": {"data": "", "format": "aac"}}), 400, "format"),
    Row(
        "not-audio",
        lambda: chat({"type": "input_audio", "input_audio": {"data": "aGVsbG8=", "format": "wav"}}),
        400,
        "not a recording",
    ),
    Row(
        "not-a-video",
        lambda: chat({"type": "video_url", "video_url": {"url": data_uri(b"x", "video/mp4")}}),
        400,
        "video",
    ),
    Row("part-type", lambda: chat({"type": "hologram", "hologram": {}}), 400, "messages[0].content"),
    # Requests that cannot be answered.
    Row(
        "ends-with-assistant",
        lambda: {"model": MODEL, "messages": [{"role": "assistant", "content": "hi"}]},
        400,
        "start and end with a user",
    ),
    Row("world-steps-over", lambda: chat(image_part(), "where?", num_world_steps=9), 400, "max_world_steps"),
    Row("world-steps-no-image", lambda: chat("where?", num_world_steps=2), 400, "has none"),
    Row("temperature", lambda: chat("hi", temperature=3), 400, "temperature"),
    Row("context", lambda: chat("red " * 5000), 400, "context of 4096 tokens"),
    Row("too-many-stops", lambda: chat("hi", stop=["a", "b", "c", "d", "e"]), 400, "at most 4"),
    # Limits, each named with its flag.
    Row("pixels", lambda: chat(image_part(), "hi"), 413, "--max-image-pixels", settings=TIGHT),
    Row(
        "base64-length",
        lambda: chat(image_url("data:image/png;base64," + "@" * 150_000), "hi"),
        413,
        "--max-media-mb",
        settings=TIGHT,
    ),
    Row("audio-seconds", lambda: chat(recording(1.0)), 413, "--max-audio-seconds", settings=TIGHT),
    Row("mp3-seconds", lambda: chat(recording(1.0, "mp3")), 413, "--max-audio-seconds", settings=TIGHT),
    Row("video-frames", lambda: chat(video(12), "hi"), 413, "--max-video-frames", settings=TIGHT),
    Row("max-tokens", lambda: chat("hi", max_tokens=9), 400, "--max-tokens-cap", settings=TIGHT),
    Row("max-completion-tokens", lambda: chat("hi", max_completion_tokens=99), 400, "--max-tokens-cap", settings=TIGHT),
    Row("choices", lambda: chat("hi", n=3), 400, "--max-choices", settings=TIGHT),
    Row("body", lambda: chat("red " * 60_000), 413, "--max-request-mb", settings=TIGHT),
    Row(
        "speech-chars",
        lambda: {"model": MODEL, "voice": "alloy", "input": "two " * 10},
        413,
        "--max-speech-chars",
        "/audio/speech",
        TIGHT,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_refusals_name_the_problem_and_the_flag(served, row: Row):
    server = served(**row.settings)
    response = httpx.post(f"{server.base_url}{row.path}", json=row.request(), timeout=60)
    assert response.status_code == row.status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert row.fragment.lower() in error["message"].lower(), error


def test_a_body_that_is_not_json_is_named_as_such(served):
    response = httpx.post(
        f"{served().base_url}/chat/completions", content=b"{bad json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "not valid JSON" in response.json()["error"]["message"]


def test_an_oversize_body_is_refused_before_it_is_read(served):
    server = served(**TIGHT)

    def endless():  # no Content-Length: the server counts what arrives and stops at the limit
        for _ in range(1000):
            yield b"x" * 10_000

    response = httpx.post(f"{server.base_url}/chat/completions", content=endless(), timeout=60)
    assert response.status_code == 413 and "--max-request-mb" in response.json()["error"]["message"]
    upload = server.client().audio.transcriptions.with_raw_response
    with pytest.raises(openai.APIStatusError) as caught:
        upload.create(model=MODEL, file=("big.wav", b"\0" * 300_000))
    assert caught.value.status_code == 413 and "--max-request-mb" in caught.value.message


def test_the_openai_client_raises_its_own_errors(served):
    client = served(**TIGHT).client()
    with pytest.raises(openai.BadRequestError, match="invalid base64"):
        client.chat.completions.create(**chat(image_url("data:image/png;base64,@@"), "hi"))
    with pytest.raises(openai.APIStatusError, match="--max-image-pixels") as caught:
        client.chat.completions.create(**chat(image_url(data_uri(SCENE.read_bytes(), "image/png")), "hi"))
    assert caught.value.status_code == 413
