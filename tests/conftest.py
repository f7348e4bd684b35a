"""Fixtures and hooks: tiny random TheWorld checkpoints that the tests build and save themselves (no downloads),
and the `needs_espeak` marker. Plain helpers live in support.py."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
from support import HAS_ESPEAK, randomise

from theworld import TheWorld  # importing theworld registers TheWorld with the Auto classes
from theworld.modeling.presets import config_from_name
from theworld.modeling.processing import build_processor, train_tokenizer

torch.set_num_threads(1)

CORPUS = [
    "where is the red ball? top left",
    "is the blue square falling? yes",
    "how many shapes are there? two",
    "which shape moves faster, the red or the green? green",
] * 10


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_espeak: speaks its recordings with espeak-ng")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the `needs_espeak` tests where espeak-ng is missing, unless THEWORLD_REQUIRE_ESPEAK asks them to fail."""
    if HAS_ESPEAK:
        return
    skip = pytest.mark.skip(
        reason="espeak-ng is not installed (apt-get install espeak-ng); CI installs it and sets THEWORLD_REQUIRE_ESPEAK"
    )
    for item in items:
        if item.get_closest_marker("needs_espeak"):
            item.add_marker(skip)


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
