"""Plain helpers the tests share: images, chat inputs, randomised tiny models, a command on a pseudo-terminal.

Fixtures and hooks live in conftest.py; test modules import these functions from here, never from each other.
"""

import os
import pty
import select
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image

from theworld import TheWorld
from theworld.modeling.presets import config_from_name

__all__ = [
    "HAS_ESPEAK",
    "Terminal",
    "chat_inputs",
    "conversation",
    "make_image",
    "object_reader_model",
    "randomise",
]

# CI sets THEWORLD_REQUIRE_ESPEAK so that a missing espeak-ng fails the speech tests instead of skipping them.
HAS_ESPEAK = shutil.which("espeak-ng") is not None or bool(os.environ.get("THEWORLD_REQUIRE_ESPEAK"))


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
