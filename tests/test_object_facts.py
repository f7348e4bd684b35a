"""The object reader's facts: what its heads are trained to decode, and what kind words carry into the prompt."""

import re

import numpy as np
import pytest
import torch
from support import chat_inputs, make_image, object_reader_model, randomise

from theworld.evaluation.world_data import fact_targets
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.object_reader import QUESTION_WORDS, _words_before, object_fact_names, pair_fact_names
from theworld.modeling.presets import config_from_name, resolve_world_objects
from theworld.toyworld import simulate
from theworld.toyworld.language import MAX_STEPS, QUADRANTS, questions
from theworld.toyworld.physics import COLOURS, KINDS
from theworld.training.language_stage import ask_facts

NAMES = ["red", "green"]
# The test tokenizer (300 pieces) has few whole words: any single-token words serve as kind names here.
KIND_WORDS = ["the", "shap", "re"]


@pytest.fixture(scope="module")
def facts_model(processor):
    objects = {"names": NAMES, "num_kinds": len(KIND_WORDS), "kinds": KIND_WORDS, "hidden_size": 16}
    return object_reader_model(processor, objects)


def _fact(values: torch.Tensor, mask: torch.Tensor, names: list[str], name: str) -> bool:
    column = names.index(name)
    assert mask[column] == 1, f"{name} is masked out, but the question generator asks it"
    return bool(values[column])


@pytest.mark.parametrize("seed", range(6))
def test_fact_targets_answer_every_question_the_generator_asks(seed):
    """Each fact the heads learn, where it is not masked out, gives the generator's own answer to the question."""
    clip = simulate(seed)
    names = list(COLOURS)
    object_names, pair_names = object_fact_names(MAX_STEPS), pair_fact_names(MAX_STEPS)
    checked = 0
    for t in range(2, len(clip.states) - MAX_STEPS):
        objects, object_mask, pairs, pair_mask = fact_targets(clip, t, names, MAX_STEPS)
        for qa in questions(clip, t, np.random.default_rng(seed)):
            colours = [names.index(c) for c in re.findall("|".join(names), qa.question)]
            if qa.kind == "future_quadrant":
                slot = colours[0]
                right = _fact(objects[slot], object_mask[slot], object_names, f"right_{qa.steps}")
                bottom = _fact(objects[slot], object_mask[slot], object_names, f"bottom_{qa.steps}")
                assert QUADRANTS[2 * bottom + right] == qa.answer, qa
            elif qa.kind == "hits_floor":
                slot = colours[0]
                hit = _fact(objects[slot], object_mask[slot], object_names, f"hit_floor_{qa.steps}")
                assert ("yes" if hit else "no") == qa.answer, qa
            elif qa.kind in ("left_of", "above", "meet", "larger", "faster"):
                a, b = colours
                name = f"{qa.kind}_{qa.steps}" if qa.kind in ("meet", "faster") else qa.kind
                fact = _fact(pairs[a, b], pair_mask[a, b], pair_names, name)
                if qa.kind in ("larger", "faster"):
                    assert names[a if fact else b] == qa.answer, qa
                else:
                    assert ("yes" if fact else "no") == qa.answer, qa
            else:
                continue
            checked += 1
    assert checked > 10


def test_absent_objects_have_no_facts():
    clip = simulate(0)
    objects, object_mask, pairs, pair_mask = fact_targets(clip, 2, list(COLOURS), MAX_STEPS)
    absent = [i for i, name in enumerate(COLOURS) if name not in {s.colour for s in clip.states[2]}]
    assert absent and not object_mask[absent].any() and not pair_mask[absent].any() and not pair_mask[:, absent].any()


def test_a_kind_word_carries_which_objects_are_of_that_kind(facts_model, processor):
    """A kind word after an image ("the triangle") gets that image's reading of which objects are of that kind;
    before any image, nothing."""
    ball = facts_model.config.world_objects["kind_token_ids"][0]
    text = {"type": "text", "text": "is the red"}
    chat = [{"role": "user", "content": [text, {"type": "image", "image": make_image(6)}, text]}]
    inputs = chat_inputs(processor, [chat])
    with torch.no_grad():
        merged = facts_model.build_world_inputs(inputs["input_ids"], inputs["pixel_values"], 2)
        courses = facts_model.project_world(facts_model.imagine(inputs["pixel_values"], 2))[1]
        expected = facts_model.object_reader.embed_kind_mentions(courses, torch.tensor([0]))[0]
        plain = facts_model.get_input_embeddings()(merged.input_ids[0])
    where = (merged.input_ids[0] == ball).nonzero().flatten()
    assert len(where) == 2
    added = merged.inputs_embeds[0, where] - plain[where]
    torch.testing.assert_close(added[0], torch.zeros_like(added[0]))
    torch.testing.assert_close(added[1], expected)
    other = facts_model.object_reader.embed_kind_mentions(courses, torch.tensor([1]))[0]
    assert not torch.allclose(expected, other)


def test_pair_facts_join_the_relation_of_the_named_pair(facts_model):
    """The second of two named objects gets the pair's decoded facts: different facts, a different embedding."""
    reader = facts_model.object_reader
    courses = torch.randn(2, reader.mention_embedding[0].in_features)
    with torch.no_grad():
        before = reader.embed_mentions(courses[1:], courses[:1])
        reader.pair_fact_embedding.weight.mul_(2)
        after = reader.embed_mentions(courses[1:], courses[:1])
        reader.pair_fact_embedding.weight.div_(2)
        alone = reader.embed_mentions(courses[1:], None)
        reader.pair_fact_embedding.weight.mul_(2)
        torch.testing.assert_close(reader.embed_mentions(courses[1:], None), alone)  # no pair, no pair facts
        reader.pair_fact_embedding.weight.div_(2)
    assert not torch.allclose(before, after)


@pytest.fixture(scope="module")
def asking_model(processor):
    objects = {"names": NAMES, "num_kinds": len(KIND_WORDS), "kinds": KIND_WORDS, "hidden_size": 16}
    return object_reader_model(processor, dict(objects, asked_facts=True))


def _added_at_second_name(model, processor, question: str) -> torch.Tensor:
    """What the object reader adds to the prompt at "green", named after "red" in `question` about one image."""
    content = [{"type": "image", "image": make_image(6)}, {"type": "text", "text": question}]
    chat = [{"role": "user", "content": content}]
    inputs = chat_inputs(processor, [chat])
    with torch.no_grad():
        merged = model.build_world_inputs(inputs["input_ids"], inputs["pixel_values"], 2)
        plain = model.get_input_embeddings()(merged.input_ids[0])
    green = processor.tokenizer.convert_tokens_to_ids(processor.tokenizer.tokenize(" green"))[0]
    where = (merged.input_ids[0] == green).nonzero().flatten()
    assert len(where) == 1
    return merged.inputs_embeds[0, where[0]] - plain[where[0]]


def test_asked_facts_depend_on_the_question_words(asking_model, facts_model, processor):
    """With `asked_facts`, which pair facts reach the second name depends on the words that ask about the pair;
    without, a mention carries the same facts whatever the question."""
    questions = ("is the red left of the green", "which will move faster, the red or the green")
    asked = [_added_at_second_name(asking_model, processor, question) for question in questions]
    assert not torch.allclose(asked[0], asked[1])
    fixed = [_added_at_second_name(facts_model, processor, question) for question in questions]
    torch.testing.assert_close(fixed[0], fixed[1])


def test_the_question_picks_which_pair_fact_reaches_the_mention(asking_model):
    """A question whose words pick "larger" passes on the decoded "larger" and nothing of the other facts."""
    reader = asking_model.object_reader
    courses = torch.randn(2, reader.mention_embedding[0].in_features, generator=torch.Generator().manual_seed(0))
    question = torch.randn(1, reader.fact_query.in_features)
    names = pair_fact_names(reader.max_steps)
    output_bias = reader.facts.pair_head[-1].bias
    saved = {name: value.clone() for name, value in reader.state_dict().items()}

    def asked_part() -> torch.Tensor:
        return reader.embed_mentions(courses[1:], courses[:1], question) - reader.embed_mentions(
            courses[1:], courses[:1]
        )

    try:
        with torch.no_grad():
            reader.fact_query.weight.zero_()
            reader.fact_query.bias.copy_(torch.tensor([40.0 if name == "larger" else 0.0 for name in names]))
            before = asked_part()
            output_bias[names.index("faster_1")] += 5.0
            torch.testing.assert_close(asked_part(), before)  # a fact the question did not pick changed
            output_bias[names.index("larger")] += 5.0
            assert not torch.allclose(asked_part(), before)
    finally:
        reader.load_state_dict(saved)


def test_the_words_before_a_mention_are_the_last_ones_after_its_image():
    """A mention's question is the mean of the last `QUESTION_WORDS` words before it after the same image: not
    the words before that image, not tokens that are not words (zeros), not the mention or what follows it."""
    length, size = 2 * QUESTION_WORDS + 6, 4
    words = torch.arange(1, length + 1, dtype=torch.float)[:, None].expand(length, size).clone()
    words[5] = 0  # a token that is not a word (an image's)
    image_of = torch.tensor([[-1] * 3 + [0] * (length - 3)])
    late, early, first = length - 2, 8, 3
    picked = _words_before(words[None], image_of, torch.tensor([0, 0, 0]), torch.tensor([late, early, first]))
    late_words = list(range(late - QUESTION_WORDS, late))
    early_words = [p for p in range(3, early) if p != 5]
    torch.testing.assert_close(picked[0], words[late_words].mean(0))
    torch.testing.assert_close(picked[1], words[early_words].mean(0))
    torch.testing.assert_close(picked[2], torch.zeros(size))  # right after its image: no words yet


def test_the_language_stage_adds_asked_facts_to_a_trained_reader(processor, tmp_path):
    """`--asked-facts` on a checkpoint whose reader has none: every weight it had stays, the question's words now
    change what a mention gets, and the checkpoint saves and loads with them."""
    objects = {"names": NAMES, "num_kinds": len(KIND_WORDS), "kinds": KIND_WORDS, "hidden_size": 16}
    model = object_reader_model(processor, objects)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    ask_facts(model)
    assert model.config.world_objects["asked_facts"] and model.object_reader.asked_facts
    after = model.state_dict()
    assert all(torch.equal(after[name], value) for name, value in before.items())
    added = {name.rsplit(".", 1)[0] for name in after if name not in before}
    assert added == {"object_reader.fact_query", "object_reader.asked_fact_embedding"}
    model.save_pretrained(tmp_path)
    loaded = TheWorld.from_pretrained(tmp_path).eval()
    question = "which will move faster, the red or the green"
    torch.testing.assert_close(
        _added_at_second_name(loaded, processor, question), _added_at_second_name(model, processor, question)
    )
    without_kinds = object_reader_model(processor, {"names": NAMES, "num_kinds": 3, "hidden_size": 16})
    with pytest.raises(ValueError, match="run `theworld train objects` first"):
        ask_facts(without_kinds)


def test_adding_kinds_keeps_a_trained_reader_and_adds_fact_heads(processor):
    """The objects stage converts a checkpoint whose reader has no kind words: its detector keeps every weight."""
    torch.manual_seed(0)
    objects = {"names": NAMES, "num_kinds": len(KINDS), "hidden_size": 16}
    model = randomise(TheWorld(config_from_name("test", processor.tokenizer, world_objects=objects)))
    assert model.object_reader.kind_token_ids is None and not hasattr(model.object_reader, "facts")
    detector = {name: value.clone() for name, value in model.object_reader.detector.state_dict().items()}
    model.add_object_reader(resolve_world_objects(dict(objects, kinds=KIND_WORDS), processor.tokenizer))
    assert model.object_reader.kind_token_ids == model.config.world_objects["kind_token_ids"]
    assert hasattr(model.object_reader, "facts")
    for name, value in model.object_reader.detector.state_dict().items():
        torch.testing.assert_close(value, detector[name])


def test_kind_words_must_match_the_kinds(processor):
    objects = {"names": NAMES, "num_kinds": 3, "kinds": KIND_WORDS[:2], "hidden_size": 16}
    # transformers' config validation wraps the ValueError in huggingface_hub's StrictDataclassClassValidationError.
    with pytest.raises(Exception, match="one 'kind_token_ids' entry per kind"):
        config_from_name("test", processor.tokenizer, world_objects=objects)
    without_kinds = {"names": NAMES, "num_kinds": 3, "hidden_size": 16, "asked_facts": True}
    with pytest.raises(Exception, match="'asked_facts' needs 'kind_token_ids'"):
        config_from_name("test", processor.tokenizer, world_objects=without_kinds)
