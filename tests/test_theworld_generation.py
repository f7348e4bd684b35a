"""World-aware generation: every decoding mode, batches, the prefix KV cache, and world effects."""

import pytest
import torch
from support import chat_inputs, conversation, make_image

GREEDY = {"max_new_tokens": 6, "do_sample": False}


@pytest.fixture(scope="module")
def inputs(processor):
    return chat_inputs(processor, [conversation(make_image(1), "where is the red ball?")])


def naive_greedy(model, inputs, max_new_tokens: int, num_world_steps: int) -> torch.Tensor:
    """Recompute the whole sequence (world included) at every step: the reference for the KV-cached path."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    types = inputs["token_type_ids"]
    for _ in range(max_new_tokens):
        logits = model(
            input_ids=ids,
            attention_mask=mask,
            token_type_ids=types,
            pixel_values=inputs["pixel_values"],
            num_world_steps=num_world_steps,
        ).logits
        next_token = logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, next_token], 1)
        mask = torch.cat([mask, torch.ones_like(next_token)], 1)
        types = torch.cat([types, torch.zeros_like(next_token)], 1)
    return ids


def sequence_logprob(model, inputs, sequence: torch.Tensor, num_world_steps: int) -> float:
    prompt_length = inputs["input_ids"].shape[1]
    types = torch.cat([inputs["token_type_ids"], torch.zeros_like(sequence[:, prompt_length:])], 1)
    logits = model(
        input_ids=sequence,
        token_type_ids=types,
        pixel_values=inputs["pixel_values"],
        num_world_steps=num_world_steps,
    ).logits
    logprobs = logits[:, prompt_length - 1 : -1].log_softmax(-1)
    return logprobs.gather(-1, sequence[:, prompt_length:, None]).sum().item()


@pytest.mark.parametrize("steps", [0, 3])
def test_cached_greedy_equals_naive_recompute(model, inputs, steps):
    cached = model.generate(**inputs, num_world_steps=steps, **GREEDY)
    assert torch.equal(cached, naive_greedy(model, inputs, GREEDY["max_new_tokens"], steps))


def test_output_starts_with_the_callers_prompt(model, inputs):
    output = model.generate(**inputs, num_world_steps=2, **GREEDY)
    prompt_length = inputs["input_ids"].shape[1]
    assert output.shape == (1, prompt_length + GREEDY["max_new_tokens"])
    assert torch.equal(output[:, :prompt_length], inputs["input_ids"])


def test_sampling_is_seeded_and_uses_its_parameters(model, inputs):
    def sample(seed, **kwargs):
        torch.manual_seed(seed)
        return model.generate(**inputs, num_world_steps=2, do_sample=True, max_new_tokens=12, **kwargs)

    assert torch.equal(sample(0, temperature=1.5), sample(0, temperature=1.5))
    draws = {tuple(sample(seed, temperature=5.0)[0].tolist()) for seed in range(4)}
    assert len(draws) > 1
    # top_k=1 leaves only the argmax: sampling becomes greedy whatever the temperature.
    assert torch.equal(
        sample(3, top_k=1, temperature=5.0), model.generate(**inputs, num_world_steps=2, max_new_tokens=12)
    )
    # A tiny top_p keeps only the most likely token too.
    assert torch.equal(sample(4, top_p=1e-6), model.generate(**inputs, num_world_steps=2, max_new_tokens=12))


def test_beam_search_finds_a_sequence_at_least_as_likely_as_greedy(model, inputs):
    greedy = model.generate(**inputs, num_world_steps=2, **GREEDY)
    beams = model.generate(**inputs, num_world_steps=2, num_beams=4, num_return_sequences=2, **GREEDY)
    assert beams.shape[0] == 2
    assert torch.equal(beams[:, : inputs["input_ids"].shape[1]], inputs["input_ids"].expand(2, -1))
    best = sequence_logprob(model, inputs, beams[:1], 2)
    assert best >= sequence_logprob(model, inputs, greedy, 2) - 1e-4
    assert torch.equal(model.generate(**inputs, num_world_steps=2, num_beams=1, **GREEDY), greedy)


def test_return_dict_in_generate_keeps_the_callers_prompt(model, inputs):
    output = model.generate(**inputs, num_world_steps=1, return_dict_in_generate=True, output_scores=True, **GREEDY)
    assert torch.equal(output.sequences, model.generate(**inputs, num_world_steps=1, **GREEDY))
    assert len(output.scores) == GREEDY["max_new_tokens"]


def test_batch_equals_items_one_by_one(model, processor):
    conversations = [
        conversation(make_image(2), "where is the red ball?"),
        conversation(make_image(3), "how many shapes are there in this picture, can you count them?"),
        conversation(None, "is the blue square falling?"),
    ]
    batch = chat_inputs(processor, conversations)
    assert (batch["attention_mask"] == 0).any(), "the batch must be padded for this test to mean anything"
    outputs = model.generate(**batch, num_world_steps=2, **GREEDY)
    decoded = processor.batch_decode(outputs[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    for row, single in enumerate(conversations):
        alone = chat_inputs(processor, [single])
        steps = 2 if "pixel_values" in alone else None  # world steps need an image; a text-only row has none
        expected = model.generate(**alone, num_world_steps=steps, **GREEDY)
        assert outputs[row, -GREEDY["max_new_tokens"] :].tolist() == expected[0, -GREEDY["max_new_tokens"] :].tolist()
        assert decoded[row] == processor.decode(expected[0, alone["input_ids"].shape[1] :], skip_special_tokens=True)


def test_text_only_prompt_with_world_enabled_adds_no_world_tokens(model, processor):
    inputs = chat_inputs(processor, [conversation(None, "how many shapes are there?")])
    with_world = model(**inputs).logits
    assert torch.equal(with_world, model(**inputs, skip_world_tokens=True).logits)
    assert torch.equal(model.generate(**inputs, **GREEDY), model.generate(**inputs, skip_world_tokens=True, **GREEDY))


def test_world_changes_the_logits_and_the_ablation_restores_the_baseline(model, inputs):
    baseline = model(**inputs, skip_world_tokens=True).logits
    now = model(**inputs, num_world_steps=0).logits
    future = model(**inputs, num_world_steps=3).logits
    assert not torch.allclose(now, baseline)
    assert not torch.allclose(now, future)
    # Different world input: the same prompt and SigLIP image, a different world encoding.
    original = {name: p.clone() for name, p in model.world_encoder.named_parameters()}
    try:
        with torch.no_grad():
            for parameter in model.world_encoder.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        assert not torch.allclose(model(**inputs, num_world_steps=3).logits, future)
        assert torch.equal(model(**inputs, skip_world_tokens=True).logits, baseline)
    finally:
        with torch.no_grad():
            for name, parameter in model.world_encoder.named_parameters():
                parameter.copy_(original[name])


def test_world_embeddings_are_computed_once_per_generate(model, inputs, monkeypatch):
    calls = []
    original = model.imagine
    monkeypatch.setattr(model, "imagine", lambda *a, **k: calls.append(1) or original(*a, **k))
    model.generate(**inputs, num_world_steps=2, max_new_tokens=8)
    assert len(calls) == 1


def test_ask_answers_one_image_as_text(model, processor, tmp_path):
    image_path = tmp_path / "scene.png"
    make_image(5).save(image_path)
    model.processor = processor
    answer = model.ask(image_path, "where is the red ball?", num_world_steps=2, max_new_tokens=4)
    inputs = chat_inputs(processor, [conversation(make_image(5), "where is the red ball?")])
    expected = model.generate(**inputs, num_world_steps=2, max_new_tokens=4)
    assert answer == processor.decode(expected[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
