"""Plain helpers the tests share: images, chat inputs, randomised tiny models, a command on a pseudo-terminal.

Fixtures and hooks live in conftest.py; test modules import these functions from here, never from each other.
"""

import base64
import importlib.util
import io
import os
import pickle
import pty
import select
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from theworld import TheWorld
from theworld.modeling.presets import config_from_name

__all__ = [
    "HAS_CHROMIUM",
    "HAS_ESPEAK",
    "Terminal",
    "chat_inputs",
    "conversation",
    "data_uri",
    "image_part",
    "make_image",
    "object_reader_model",
    "randomise",
    "user_turn",
    "write_hostile_pickle",
    "write_png_header",
]

# CI sets THEWORLD_REQUIRE_ESPEAK so that a missing espeak-ng fails the speech tests instead of skipping them.
HAS_ESPEAK = shutil.which("espeak-ng") is not None or bool(os.environ.get("THEWORLD_REQUIRE_ESPEAK"))
# Likewise THEWORLD_REQUIRE_CHROMIUM for the page's tests in a real browser (Debian's chromium, chromium-driver and
# the selenium package).
HAS_CHROMIUM = (
    all(shutil.which(tool) for tool in ("chromium", "chromedriver"))
    and importlib.util.find_spec("selenium") is not None
) or bool(os.environ.get("THEWORLD_REQUIRE_CHROMIUM"))


def randomise(model: TheWorld, seed: int = 0) -> TheWorld:
    """Random weights everywhere a fresh model has zeros (image projection, dynamics output), so that images and
    imagined steps change the logits, as in a trained model."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        projection = model.model.multi_modal_projector.mm_input_projection_weight
        projection.copy_(torch.randn(projection.shape, generator=generator) * 0.5)
        if model.config.enable_world:
            for parameter in model.dynamics.out.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model.eval()


def make_image(seed: int, size: int = 32) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def write_png_header(path, width: int, height: int) -> None:
    """A PNG that says it is `width`x`height` and holds no pixels: enough for a reader to refuse it by its size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def conversation(image: Image.Image | None, text: str) -> list[dict]:
    content = ([{"type": "image", "image": image}] if image is not None else []) + [{"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


def chat_inputs(processor, conversations: list[list[dict]]):
    return processor.apply_chat_template(
        conversations if len(conversations) > 1 else conversations[0],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"padding": True},
    )


def object_reader_model(processor, world_objects: dict) -> TheWorld:
    """A "test"-preset TheWorld with an object reader whose weights are of a trained reader's scale, so that
    different images read differently."""
    torch.manual_seed(0)
    model = randomise(TheWorld(config_from_name("test", processor.tokenizer, world_objects=world_objects)))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.object_reader.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model


class _Tripwire:
    """Unpickling this object creates the file at `path`, as a hostile pickle would run its code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def write_hostile_pickle(path, sentinel) -> None:
    """Weights as pickles hold them (a dict of tensors), one of which creates `sentinel` when unpickled."""
    path.write_bytes(pickle.dumps({"weight": torch.zeros(2), "payload": _Tripwire(str(sentinel))}))


class Terminal:
    """A `theworld` command on a pseudo-terminal (so it sees a tty), driven line by line."""

    def __init__(self, *arguments: str):
        self.leader, follower = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "theworld.cli.main", *arguments],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TERM="dumb"),
            close_fds=True,
        )
        os.close(follower)
        self.transcript = b""

    def send(self, line: str) -> None:
        os.write(self.leader, line.encode() + b"\n")

    def read_until(self, marker: bytes, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while marker not in self.transcript and time.time() < deadline:
            if select.select([self.leader], [], [], 0.5)[0]:
                try:
                    self.transcript += os.read(self.leader, 4096)
                except OSError:
                    break
        assert marker in self.transcript, self.transcript.decode(errors="replace")[-2000:]

    def forget_until_prompt(self, prompt: bytes) -> None:
        self.transcript = self.transcript[self.transcript.rindex(prompt) + len(prompt) :]

    def close(self) -> None:
        self.process.kill()
        os.close(self.leader)


# ---------------------------------------------------------------------------------- OpenAI-style chat requests
SCENE = Path(__file__).resolve().parents[1] / "examples" / "toyworld_scene.png"


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_part(image: Image.Image | None = None) -> dict:
    """An OpenAI `image_url` content part: `image` (default: the example scene) as a PNG data URI."""
    if image is None:
        return {"type": "image_url", "image_url": {"url": data_uri(SCENE.read_bytes(), "image/png")}}
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"type": "image_url", "image_url": {"url": data_uri(buffer.getvalue(), "image/png")}}


def user_turn(*parts) -> list[dict]:
    """OpenAI messages of one user turn: content parts as given, strings as text parts."""
    return [{"role": "user", "content": [p if isinstance(p, dict) else {"type": "text", "text": p} for p in parts]}]
