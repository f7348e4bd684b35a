"""Bad input gets one clear error naming the problem and the fix."""

import pytest
from support import chat_inputs, conversation, make_image

from theworld import TheWorld
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
