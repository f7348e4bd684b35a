"""Bad input gets one clear error naming the problem and the fix."""

import numpy as np
import pytest
from PIL import Image
from support import chat_inputs, conversation, make_image
from typer.testing import CliRunner

from theworld import TheWorld
from theworld.cli.main import app
from theworld.media import MediaError


@pytest.fixture(scope="module")
def inputs(processor):
    return chat_inputs(processor, [conversation(make_image(9), "where is the red ball?")])


def test_negative_world_steps(model, inputs):
    with pytest.raises(ValueError, match="num_world_steps must be 0 or more"):
        model.generate(**inputs, num_world_steps=-1)


def test_more_world_steps_than_the_model_covers(model, inputs):
    with pytest.raises(ValueError, match="exceeds this model's max_world_steps"):
        model.generate(**inputs, num_world_steps=model.config.max_world_steps + 1)


def test_world_steps_without_an_image(model, processor):
    text_only = chat_inputs(processor, [conversation(None, "how many shapes are there?")])
    with pytest.raises(ValueError, match="add an image"):
        model.generate(**text_only, num_world_steps=2)


def test_world_steps_with_the_world_disabled(checkpoint, inputs):
    plain = TheWorld.from_pretrained(checkpoint, enable_world=False)
    with pytest.raises(ValueError, match="enable_world=True"):
        plain.generate(**inputs, num_world_steps=2)


def test_check_world_steps_is_the_check_generate_makes(model, checkpoint):
    model.check_world_steps(0)
    model.check_world_steps(model.config.max_world_steps)
    with pytest.raises(ValueError, match="num_world_steps must be 0 or more"):
        model.check_world_steps(-1)
    with pytest.raises(ValueError, match="exceeds this model's max_world_steps"):
        model.check_world_steps(model.config.max_world_steps + 1)
    with pytest.raises(ValueError, match="enable_world=True"):
        TheWorld.from_pretrained(checkpoint, enable_world=False).check_world_steps(1)


def test_unreadable_images(model, processor, tmp_path):
    model.processor = processor
    with pytest.raises(MediaError, match="Image not found"):
        model.ask(tmp_path / "missing.png", "where is the red ball?")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(MediaError, match="Cannot read image"):
        model.ask(corrupt, "where is the red ball?")


def test_unknown_model_path(tmp_path):
    with pytest.raises(OSError):
        TheWorld.from_pretrained(tmp_path / "no-such-model")


def test_a_non_gemma_checkpoint_is_refused(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(
        tmp_path
    )
    with pytest.raises(ValueError, match="TheWorld loads Gemma 3"):
        TheWorld.from_pretrained(tmp_path)


# ------------------------------------------------------------------------------- pixel values and prompt length
def test_image_tokens_without_pixel_values(model, inputs):
    no_pixels = {key: value for key, value in inputs.items() if key != "pixel_values"}
    with pytest.raises(ValueError, match="image tokens but no pixel_values"):
        model.generate(**no_pixels, max_new_tokens=2)
    with pytest.raises(ValueError, match="image tokens but no pixel_values"):
        model(**no_pixels)


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda pixels: pixels.masked_fill(pixels > 0.5, float("nan")), "NaN or infinite"),
        (lambda pixels: pixels.masked_fill(pixels > 0.5, float("inf")), "NaN or infinite"),
        (lambda pixels: (pixels + 1) * 127.5, r"lie in \[0, 255\]"),
        (lambda pixels: (pixels + 1) / 2, "not normalised to"),
    ],
    ids=["nan", "inf", "raw-pixels", "unnormalised"],
)
def test_pixel_values_the_model_cannot_read(model, inputs, spoil, message):
    spoiled = {**inputs, "pixel_values": spoil(inputs["pixel_values"])}
    with pytest.raises(ValueError, match=f"pixel_values.*{message}|{message}.*pixel_values"):
        model.generate(**spoiled, max_new_tokens=2)
    with pytest.raises(ValueError, match="pixel_values"):
        model(**spoiled)


@pytest.mark.parametrize("level", [255, 144], ids=["white", "bright"])
def test_bright_images_are_not_mistaken_for_unnormalised_ones(model, processor, level):
    """A processed all-bright image has no negative value, yet it is what the processor gives: it is answered."""
    image = Image.fromarray(np.full((32, 32, 3), level, dtype=np.uint8))
    bright = chat_inputs(processor, [conversation(image, "where is the red ball?")])
    assert float(bright["pixel_values"].min()) >= 0
    assert model.generate(**bright, max_new_tokens=2).shape[1] == bright["input_ids"].shape[1] + 2


def test_a_prompt_longer_than_the_context_is_refused_before_any_compute(model, processor, monkeypatch):
    def no_compute(*args, **kwargs):
        raise AssertionError("the vision tower and the world encoder must not run for a prompt that cannot fit")

    monkeypatch.setattr(model.model, "get_image_features", no_compute)
    monkeypatch.setattr(model.world_encoder, "encode", no_compute)
    model.processor = processor
    context = model.config.text_config.max_position_embeddings
    question = "where is the red ball? " * context
    with pytest.raises(ValueError, match=rf"The prompt is \d+ tokens.*over this model's context of {context} tokens"):
        model.ask(make_image(9), question)
    with pytest.raises(ValueError, match=f"context of {context} tokens"):
        model.ask(make_image(9), question, return_world_latents=True)
    text_only = chat_inputs(processor, [conversation(None, question)])
    with pytest.raises(ValueError, match=f"context of {context} tokens"):
        model(**text_only)


def test_the_world_blocks_and_new_tokens_count_against_the_context(model, inputs):
    """A prompt that fits alone is refused when its world tokens and max_new_tokens do not."""
    context = model.config.text_config.max_position_embeddings
    prompt = inputs["input_ids"].shape[1]
    world = (1 + 2) * model.tokens_per_world_step + 2
    model.generate(**inputs, num_world_steps=2, max_new_tokens=context - prompt - world)
    with pytest.raises(ValueError, match=f"The prompt is {prompt + world} tokens \\(world tokens included\\)"):
        model.generate(**inputs, num_world_steps=2, max_new_tokens=context - prompt - world + 1)


# ------------------------------------------------------------------------- an answer whose file cannot be written
def test_ask_prints_the_answer_when_its_world_cannot_be_written(checkpoint, tmp_path, monkeypatch):
    """The frames are written after the answer is printed; a failed write names the user's path and flag, not the
    staging file the atomic writer used."""
    import theworld.media.writers as writers

    def disk_full(path, *args, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(writers, "write_gif", disk_full)
    make_image(3).save(tmp_path / "scene.png")
    target = tmp_path / "world"
    arguments = ["ask", str(tmp_path / "scene.png"), "where?", "--model", str(checkpoint), "--max-new-tokens", "3"]
    plain = CliRunner().invoke(app, arguments)
    result = CliRunner().invoke(app, [*arguments, "--save-world", str(target)])
    assert result.exit_code == 2, result.output
    assert result.stdout == plain.stdout and plain.stdout.strip(), "the answer is printed all the same"
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: Cannot write --save-world {target}: No space left on device; pass a path in a folder you can write to"
    ]
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")], "no staging file is left behind"
