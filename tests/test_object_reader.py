"""The object reader: one world token per named object per frame, decoded from the world's latents."""

import copy

import pytest
import torch
from support import chat_inputs, conversation, make_image, object_reader_model

from theworld.evaluation.world_data import RADIUS_SCALE, object_targets
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.object_reader import ObjectReader, _previous_object, latest_image
from theworld.modeling.presets import config_from_name, preset_world_objects
from theworld.toyworld import simulate
from theworld.toyworld.physics import COLOURS, KINDS

NAMES = ["red", "green"]  # single tokens of the test tokenizer (a 300-word vocabulary)


@pytest.fixture(scope="module")
def object_model(processor):
    return object_reader_model(processor, {"names": NAMES, "num_kinds": len(KINDS), "hidden_size": 16})


def test_targets_are_the_simulated_states():
    clip = simulate(3)
    targets = object_targets([clip], list(COLOURS))
    size = clip.frames.shape[2]
    for t, shapes in enumerate(clip.states):
        shown = {shape.colour for shape in shapes}
        assert [bool(flag) for flag in targets[0, t, :, 0]] == [name in shown for name in COLOURS]
        for shape in shapes:
            row = targets[0, t, list(COLOURS).index(shape.colour)]
            assert row[1] * size == pytest.approx(shape.x, abs=1e-3)
            assert row[2] * size == pytest.approx(shape.y, abs=1e-3)
            assert row[3] * size / RADIUS_SCALE == pytest.approx(shape.radius, abs=1e-3)
            assert KINDS[int(row[4])] == shape.kind


def test_one_world_token_per_object_and_frame(object_model, processor):
    assert isinstance(object_model.object_reader, ObjectReader)
    regions = object_model.world_projector.tokens_per_frame(object_model.world_encoder.latent_size)
    assert object_model.tokens_per_world_step == regions + len(NAMES)
    pixel_values = processor.image_processor(images=[make_image(0)], return_tensors="pt")["pixel_values"]
    assert object_model.encode_world(pixel_values, 2).shape == (
        1,
        3 * (regions + len(NAMES)),
        object_model.config.text_config.hidden_size,
    )


def test_object_tokens_read_like_their_names(object_model):
    """With nothing decoded yet (a zero state embedding, step 0), an object's token is its name's word embedding:
    "red" in a question and the red object's token start out in the same direction."""
    reader = copy.deepcopy(object_model.object_reader)
    words = object_model.get_input_embeddings()
    states = torch.zeros(1, len(NAMES), reader.state_size)
    with torch.no_grad():
        for parameter in reader.state_embedding[-1].parameters():
            parameter.zero_()
        tokens = reader.embed_states(states, words)
    ids = [object_model.config.world_objects["token_ids"][i] for i in range(len(NAMES))]
    torch.testing.assert_close(tokens[0], words(torch.tensor(ids)))


def test_a_model_with_an_object_reader_saves_and_loads_exactly(object_model, processor, tmp_path):
    object_model.save_pretrained(tmp_path)
    loaded = TheWorld.from_pretrained(tmp_path).eval()
    assert loaded.config.world_objects == object_model.config.world_objects
    inputs = chat_inputs(processor, [conversation(make_image(1), "where is the red ball?")])
    with torch.no_grad():
        expected = object_model(**inputs, num_world_steps=2).logits
        torch.testing.assert_close(loaded(**inputs, num_world_steps=2).logits, expected)


def test_object_names_must_be_single_tokens(processor):
    objects = {"names": ["red", "xylophone"], "num_kinds": 3, "hidden_size": 16}
    with pytest.raises(ValueError, match="'xylophone' is .* tokens for this tokenizer; it must be one"):
        config_from_name("test", processor.tokenizer, world_objects=objects)


def test_a_named_object_carries_its_state_into_the_prompt(object_model, processor):
    """Each mention of an object's name after an image gets that image's reading of the object added, and a
    mention that follows one of another object also their relation; text before any image is untouched."""
    red, green = object_model.config.world_objects["token_ids"][:2]
    text = {"type": "text", "text": "the red"}
    chat = [
        {
            "role": "user",
            "content": [
                text,
                {"type": "image", "image": make_image(2)},
                text,
                {"type": "image", "image": make_image(3)},
                {"type": "text", "text": "the red or the green"},
            ],
        }
    ]
    inputs = chat_inputs(processor, [chat])
    reader = object_model.object_reader
    latents = object_model.imagine(inputs["pixel_values"], 1)
    with torch.no_grad():
        merged = object_model.build_world_inputs(inputs["input_ids"], inputs["pixel_values"], 1, world_latents=latents)
        courses = object_model.project_world(latents)[1]
        words = object_model.get_input_embeddings()
        plain = words(merged.input_ids[0])
        alone = reader.embed_mentions(courses[:, 0], None)  # red, as each image shows it
        after_red = reader.embed_mentions(courses[1, 1:2], courses[1, 0:1])[0]  # green, named after red
    named = (merged.input_ids[0] == red) | (merged.input_ids[0] == green)
    where = named.nonzero().flatten()
    added = (merged.inputs_embeds[0] - plain)[where]
    assert len(where) == 4
    torch.testing.assert_close(added[0], torch.zeros_like(added[0]))
    torch.testing.assert_close(added[1], alone[0])
    torch.testing.assert_close(added[2], alone[1])
    torch.testing.assert_close(added[3], after_red)
    assert not torch.allclose(alone[0], alone[1])
    assert not torch.allclose(after_red, reader.embed_mentions(courses[1, 1:2], None)[0])


def test_a_mention_before_a_rows_first_image_reads_no_image(object_model, processor):
    """In a batch, a name before the first image of the second row gets nothing from the first row's image."""
    red = object_model.config.world_objects["token_ids"][0]
    first = [{"role": "user", "content": [{"type": "image", "image": make_image(4)}, {"type": "text", "text": "hi"}]}]
    second = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "the red"}, {"type": "image", "image": make_image(5)}],
        }
    ]
    inputs = chat_inputs(processor, [first, second])
    with torch.no_grad():
        merged = object_model.build_world_inputs(inputs["input_ids"], inputs["pixel_values"], 1)
        plain = object_model.get_input_embeddings()(torch.tensor([red]))[0]
    where = (merged.input_ids[1] == red).nonzero().flatten()
    assert len(where) == 1
    torch.testing.assert_close(merged.inputs_embeds[1, where[0]], plain)


def test_each_token_reads_the_latest_image_before_it_counted_over_the_batch():
    boi = 5
    ids = torch.tensor([[1, 5, 2, 5, 3], [4, 4, 5, 2, 2], [1, 1, 1, 1, 1]])
    assert latest_image(ids, boi).tolist() == [[-1, 0, 0, 1, 1], [-1, -1, 2, 2, 2], [-1, -1, -1, -1, -1]]


def test_a_mention_pairs_with_the_last_other_object_named_after_the_same_image():
    """Mentions in prompt order: a run of one object (a word heard over several audio frames) is one mention, and
    a new image starts afresh."""
    images = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 2])
    slots = torch.tensor([3, 1, 1, 3, 3, 1, 1, 2, 2])
    assert _previous_object(images, slots).tolist() == [-1, 0, 0, 2, 2, -1, -1, 6, -1]


def test_presets_take_the_object_vocabulary_from_the_world(processor):
    """Models know a world's object names and kinds only through their config: the preset gives the sizes."""
    objects = preset_world_objects("theworld-tiny", ["red", "green"], ["ball", "square"])
    assert objects["names"] == ["red", "green"] and objects["kinds"] == ["ball", "square"]
    assert objects["num_kinds"] == 2
    assert preset_world_objects("test", ["red"], ["ball"]) is None
    with pytest.raises(ValueError, match="preset_world_objects"):
        config_from_name("theworld-tiny", processor.tokenizer)
