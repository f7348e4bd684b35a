"""Fixtures and hooks: tiny random TheWorld checkpoints that the tests build and save themselves (no downloads),
the `needs_espeak` and `needs_chromium` markers, and `served`: a real `theworld serve` on a free loopback port for
the openai client (tests/test_serve*.py and test_page.py; the video-job tests use it too). Plain helpers live in
support.py."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
from support import HAS_CHROMIUM, HAS_ESPEAK, randomise

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
    config.addinivalue_line("markers", "needs_chromium: drives a headless chromium through chromium-driver")


# Where a tool is missing, its tests skip with the fix, unless CI's environment variable makes them fail instead.
NEEDS = {
    "needs_espeak": (
        HAS_ESPEAK,
        "espeak-ng is not installed (apt-get install espeak-ng); CI installs it and sets THEWORLD_REQUIRE_ESPEAK",
    ),
    "needs_chromium": (
        HAS_CHROMIUM,
        "chromium, chromium-driver or selenium is missing (apt-get install chromium chromium-driver; pip install "
        "selenium); CI installs them and sets THEWORLD_REQUIRE_CHROMIUM",
    ),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests of a tool that is missing, unless its THEWORLD_REQUIRE_* variable asks them to fail."""
    for marker, (present, reason) in NEEDS.items():
        if present:
            continue
        for item in items:
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))


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


class Served:
    """A `theworld serve` app running on uvicorn in a thread, on a free loopback port (what a client sees)."""

    def __init__(self, settings):
        import socket
        import threading
        import time

        import uvicorn

        from theworld.serve.app import create_app

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.root = f"http://127.0.0.1:{listener.getsockname()[1]}"
        self.base_url = f"{self.root}/v1"
        self.settings = settings
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [listener]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)

    def client(self, api_key: str = "unused", **options):
        """The official openai client, pointed at this server."""
        import openai

        return openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, **options)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def served():
    """`served(**settings)` -> a running `Served` for those `ServerSettings` (default: the shipped model), started
    once per distinct settings and stopped at the end of the session. Used by tests/test_serve*.py (chat, audio,
    limits, and the video jobs)."""
    from theworld.serve.settings import ServerSettings

    servers: dict[str, Served] = {}

    def start(**settings) -> Served:
        chosen = ServerSettings(**settings)
        key = chosen.model_dump_json()
        if key not in servers:
            servers[key] = Served(chosen)
        return servers[key]

    yield start
    for server in servers.values():
        server.stop()
