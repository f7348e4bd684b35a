"""Tiny random TheWorld checkpoints that the tests build and save themselves (no downloads)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch
from PIL import Image

import theworld  # noqa: F401  (registers TheWorld with the Auto classes)
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.presets import config_from_name
from theworld.modeling.processing import build_processor, train_tokenizer

torch.set_num_threads(1)

CORPUS = [
    "where is the red ball? top left",
    "is the blue square falling? yes",
    "how many shapes are there? two",
    "which shape moves faster, the red or the green? green",
] * 10


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


@pytest.fixture(scope="session")
def processor():
    return build_processor(train_tokenizer(CORPUS, vocab_size=300), image_size=32, image_seq_length=4)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, processor):
    """A saved tiny TheWorld folder (config + safetensors + processor files)."""
    torch.manual_seed(0)
    model = randomise(TheWorld(config_from_name("test", processor.tokenizer)))
    folder = tmp_path_factory.mktemp("theworld-test")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def model(checkpoint):
    return TheWorld.from_pretrained(checkpoint).eval()


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


class Terminal:
    """A `theworld` command on a pseudo-terminal (so it sees a tty), driven line by line."""

    def __init__(self, *arguments: str):
        import pty
        import subprocess
        import sys

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
        import select
        import time

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
