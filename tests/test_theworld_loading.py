"""Loading and saving: round trips, Gemma 3 equivalence, base Gemma 3 + Cosmos VAE, Hub ids, Auto classes."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from diffusers import AutoencoderKLCosmos, AutoencoderKLWan
from support import chat_inputs, conversation, make_image
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    Gemma3ForConditionalGeneration,
)

from theworld import DEFAULT_MODEL, TheWorld, TheWorldConfig
from theworld.modeling.processing_theworld import TheWorldProcessor

GREEDY = {"max_new_tokens": 6, "do_sample": False}


@pytest.fixture(scope="module")
def inputs(processor):
    return chat_inputs(processor, [conversation(make_image(7), "where is the red ball?")])


@pytest.fixture(scope="module")
def gemma_checkpoint(tmp_path_factory, model, processor):
    """A plain Gemma 3 folder holding the language and vision weights of the tiny TheWorld."""
    gemma = Gemma3ForConditionalGeneration(model.config.to_gemma3()).eval()
    missing, _ = gemma.load_state_dict(model.state_dict(), strict=False)
    assert not missing
    folder = tmp_path_factory.mktemp("gemma3")
    gemma.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_round_trip_gives_identical_outputs_and_only_safetensors(model, inputs, tmp_path):
    model.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert "model.safetensors" in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl"))]
    reloaded = TheWorld.from_pretrained(tmp_path).eval()
    assert torch.equal(reloaded(**inputs, num_world_steps=3).logits, model(**inputs, num_world_steps=3).logits)
    assert torch.equal(
        reloaded.generate(**inputs, num_world_steps=3, **GREEDY),
        model.generate(**inputs, num_world_steps=3, **GREEDY),
    )


def test_auto_classes_know_theworld(checkpoint, model, inputs):
    assert isinstance(AutoConfig.from_pretrained(checkpoint), TheWorldConfig)
    auto_model = AutoModelForImageTextToText.from_pretrained(checkpoint).eval()
    assert type(auto_model) is TheWorld
    assert torch.equal(auto_model(**inputs, num_world_steps=1).logits, model(**inputs, num_world_steps=1).logits)
    processor = AutoProcessor.from_pretrained(checkpoint)
    assert processor.tokenizer.convert_tokens_to_ids("<world_soft_token>") == model.config.world_token_id


def test_the_shipped_processor_loads_as_theworlds():
    """The shipped folder names `TheWorldProcessor`; importing theworld registers it with AutoProcessor."""
    processor = AutoProcessor.from_pretrained(DEFAULT_MODEL)
    assert type(processor) is TheWorldProcessor
    assert processor.audio_token_id == processor.tokenizer.convert_tokens_to_ids("<audio_soft_token>")


def test_world_off_equals_transformers_gemma3(gemma_checkpoint, inputs):
    reference = Gemma3ForConditionalGeneration.from_pretrained(gemma_checkpoint).eval()
    plain = TheWorld.from_pretrained(gemma_checkpoint, enable_world=False).eval()
    assert not hasattr(plain, "world_encoder")
    assert torch.equal(plain(**inputs).logits, reference(**inputs).logits)
    assert torch.equal(plain.generate(**inputs, **GREEDY), reference.generate(**inputs, **GREEDY))


def test_skip_world_tokens_equals_transformers_gemma3(gemma_checkpoint, model, inputs):
    reference = Gemma3ForConditionalGeneration.from_pretrained(gemma_checkpoint).eval()
    assert torch.equal(model(**inputs, skip_world_tokens=True).logits, reference(**inputs).logits)
    assert torch.equal(
        model.generate(**inputs, skip_world_tokens=True, **GREEDY), reference.generate(**inputs, **GREEDY)
    )


def test_base_gemma3_plus_cosmos_vae_gets_fresh_world_parts(gemma_checkpoint, model, inputs, tmp_path):
    vae = AutoencoderKLWan.from_config(model.config.world_encoder_config)
    vae.save_pretrained(tmp_path / "cosmos" / "vae")
    fused = TheWorld.from_pretrained(gemma_checkpoint, cosmos_model_name=str(tmp_path / "cosmos")).eval()
    for name, tensor in vae.state_dict().items():
        assert torch.equal(fused.world_encoder.vae.state_dict()[name], tensor), name
    assert not fused.dynamics.out.weight.any(), "a fresh dynamics model starts as copy-the-last-frame"
    vocab = model.config.text_config.vocab_size
    world_ids = fused.config.world_token_ids
    assert fused.config.text_config.vocab_size == vocab + 3 and min(world_ids) == vocab
    reference = Gemma3ForConditionalGeneration.from_pretrained(gemma_checkpoint).eval()
    plain_logits = fused(**inputs, skip_world_tokens=True).logits[..., :vocab]
    assert torch.equal(plain_logits, reference(**inputs).logits)
    assert fused.generate(**inputs, num_world_steps=2, **GREEDY).shape[1] == inputs["input_ids"].shape[1] + 6
    fused.save_pretrained(tmp_path / "fused")
    again = TheWorld.from_pretrained(tmp_path / "fused").eval()
    assert torch.equal(again(**inputs, num_world_steps=2).logits, fused(**inputs, num_world_steps=2).logits)


def test_dtype_and_device_map(checkpoint, inputs):
    bf16 = TheWorld.from_pretrained(checkpoint, dtype=torch.bfloat16, device_map="cpu").eval()
    assert bf16.dtype == torch.bfloat16 and bf16.world_encoder.vae.dtype == torch.bfloat16
    output = bf16.generate(**inputs, num_world_steps=2, **GREEDY)
    assert output.shape[1] == inputs["input_ids"].shape[1] + GREEDY["max_new_tokens"]


@pytest.mark.slow
def test_hub_id_and_checkpoint_from_the_offline_cache(checkpoint, tmp_path):
    """A Hub repo id resolves through huggingface_hub's cache with HF_HUB_OFFLINE=1, as on a machine that
    downloaded it before."""
    repo = tmp_path / "hub" / "models--theworld-test--tiny"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoint, snapshot)
    shutil.copytree(checkpoint, snapshot / "checkpoint-100")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    script = textwrap.dedent(
        """
        import torch, theworld
        from theworld import TheWorld
        a = TheWorld.from_pretrained("theworld-test/tiny")
        b = TheWorld.from_checkpoint_hub("theworld-test/tiny", checkpoint_name="checkpoint-100")
        print(all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values())))
        """
    )
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(tmp_path / "hub"),
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("True")


def test_saved_config_names_the_world(checkpoint):
    saved = json.loads((checkpoint / "config.json").read_text())
    assert saved["model_type"] == "theworld" and saved["enable_world"] is True
    assert saved["world_encoder_type"] == "wan"


TINY_COSMOS_VAE = {
    "latent_channels": 4,
    "encoder_block_out_channels": [8, 8, 8, 8],
    "decode_block_out_channels": [8, 8, 8, 8],
    "attention_resolutions": [],
    "resolution": 32,
    "num_layers": 1,
    "patch_size": 4,
    "spatial_compression_ratio": 4,
    "temporal_compression_ratio": 4,
    "latents_mean": None,
    "latents_std": None,
}


def test_cosmos_vae_as_the_world_encoder(gemma_checkpoint, inputs, tmp_path):
    """Cosmos-Predict1's AutoencoderKLCosmos plugs in where the Wan VAE does."""
    vae = AutoencoderKLCosmos.from_config(TINY_COSMOS_VAE)
    vae.save_pretrained(tmp_path / "cosmos1" / "vae")
    fused = TheWorld.from_pretrained(
        gemma_checkpoint, cosmos_model_name=str(tmp_path / "cosmos1"), world_encoder_type="cosmos"
    ).eval()
    assert type(fused.world_encoder.vae) is AutoencoderKLCosmos
    for name, tensor in vae.state_dict().items():
        assert torch.equal(fused.world_encoder.vae.state_dict()[name], tensor), name
    with torch.no_grad():
        fused.dynamics.out.weight.normal_(std=0.1)
    assert not torch.equal(fused(**inputs, num_world_steps=2).logits, fused(**inputs, num_world_steps=0).logits[:, :])
    fused.save_pretrained(tmp_path / "saved")
    again = TheWorld.from_pretrained(tmp_path / "saved").eval()
    assert torch.equal(again(**inputs, num_world_steps=2).logits, fused(**inputs, num_world_steps=2).logits)
