"""The real-size preset (`gemma-3-4b`): it is what the load path builds from Gemma 3 4B and Cosmos-Predict2's VAE,
it runs at the real widths, and the GPU benchmark's dry run runs on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKLWan
from safetensors.torch import save_file

from theworld import TheWorld
from theworld.modeling.loading import load_pretrained
from theworld.modeling.presets import config_from_name, preset_world
from theworld.modeling.random_init import build_random

ROOT = Path(__file__).resolve().parent.parent

# google/gemma-3-4b-it's config.json as published: what it leaves out, transformers' Gemma 3 defaults fill in.
GEMMA_3_4B_IT = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "boi_token_index": 255999,
    "eoi_token_index": 256000,
    "eos_token_id": [1, 106],
    "image_token_index": 262144,
    "initializer_range": 0.02,
    "mm_tokens_per_image": 256,
    "model_type": "gemma3",
    "text_config": {
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "model_type": "gemma3_text",
        "num_hidden_layers": 34,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "sliding_window": 1024,
    },
    "torch_dtype": "bfloat16",
    "vision_config": {
        "hidden_size": 1152,
        "image_size": 896,
        "intermediate_size": 4304,
        "model_type": "siglip_vision_model",
        "num_attention_heads": 16,
        "num_hidden_layers": 27,
        "patch_size": 14,
        "vision_use_head": False,
    },
}

# The vae/config.json of Cosmos-Predict2 (Wan2.1's VAE, Wan-AI/Wan2.1-T2V-1.3B-Diffusers).
COSMOS_PREDICT2_VAE = {
    "_class_name": "AutoencoderKLWan",
    "attn_scales": [],
    "base_dim": 96,
    "dim_mult": [1, 2, 4, 4],
    "dropout": 0.0,
    "latents_mean": [
        -0.7571,
        -0.7089,
        -0.9113,
        0.1075,
        -0.1745,
        0.9653,
        -0.1517,
        1.5508,
        0.4134,
        -0.0715,
        0.5517,
        -0.3632,
        -0.1922,
        -0.9497,
        0.2503,
        -0.2921,
    ],  # fmt: skip
    "latents_std": [
        2.8184,
        1.4541,
        2.3275,
        2.6558,
        1.2196,
        1.7708,
        2.6052,
        2.0743,
        3.2687,
        2.1526,
        2.8652,
        1.5579,
        1.6382,
        1.1253,
        2.8251,
        1.916,
    ],  # fmt: skip
    "num_res_blocks": 2,
    "temperal_downsample": [False, True, True],
    "z_dim": 16,
}

# Fields that say where a config came from, not what model it describes.
PROVENANCE = {"_name_or_path", "architectures", "transformers_version", "dtype", "torch_dtype", "eos_token_id"}


def _on_meta(config) -> TheWorld:
    with init_empty_weights(include_buffers=False):
        model = TheWorld(config)
    model.tie_weights()
    return model


def _load_path_model(tmp_path: Path, monkeypatch) -> TheWorld:
    """What `TheWorld.from_pretrained("google/gemma-3-4b-it", cosmos_model_name=..., **preset_world(...))` builds,
    on the meta device: the real configs in local folders, and every weight read left out (transformers' reading
    of the Gemma 3 weights, diffusers' of the VAE's), since neither changes a name or a shape."""
    gemma = tmp_path / "gemma-3-4b-it"
    gemma.mkdir()
    (gemma / "config.json").write_text(json.dumps(GEMMA_3_4B_IT))
    save_file({}, gemma / "model.safetensors")  # the load path checks that the weights are safetensors
    vae = tmp_path / "Cosmos-Predict2-2B-Video2World" / "vae"
    vae.mkdir(parents=True)
    (vae / "config.json").write_text(json.dumps(COSMOS_PREDICT2_VAE))

    def vae_without_weights(cls, name, subfolder=None, **kwargs):
        with init_empty_weights():
            return cls.from_config(cls.load_config(name, subfolder=subfolder))

    monkeypatch.setattr(AutoencoderKLWan, "from_pretrained", classmethod(vae_without_weights))
    return load_pretrained(
        TheWorld,
        lambda path, *args, config, **kwargs: _on_meta(config),
        str(gemma),
        enable_world=None,
        cosmos_model_name=str(vae.parent),
        cosmos_subfolder="vae",
        world_encoder_type="wan",
        config=None,
        **preset_world("gemma-3-4b"),
    )


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def _describe(config) -> dict:
    fields = {key: value for key, value in config.to_dict().items() if key not in PROVENANCE}
    for part in ("text_config", "vision_config"):
        fields[part] = {key: value for key, value in fields[part].items() if key not in PROVENANCE}
    return fields


@pytest.mark.slow
def test_the_4b_preset_is_what_the_load_path_builds(tmp_path, monkeypatch):
    loaded = _load_path_model(tmp_path, monkeypatch)
    preset = _on_meta(config_from_name("gemma-3-4b"))
    assert _shapes(preset) == _shapes(loaded)
    # Every figure, including those that shape no weight (RoPE, sliding window, layer pattern, token ids).
    assert _describe(preset.config) == _describe(loaded.config)
    assert preset.tokens_per_world_step == loaded.tokens_per_world_step == 64
    parameters = sum(p.numel() for p in preset.parameters())
    assert 4.3e9 < parameters < 4.5e9, parameters  # Gemma 3 4B (4.3B) and the world parts


def test_presets_without_their_own_ids_need_a_tokenizer():
    with pytest.raises(ValueError, match=r"config_from_name\('theworld-tiny', tokenizer\)"):
        config_from_name("theworld-tiny")


def test_a_checkpoint_preset_refuses_another_tokenizer(processor):
    with pytest.raises(ValueError, match="not the one"):
        config_from_name("gemma-3-4b", processor.tokenizer)


def two_layer_real_width(**overrides):
    """Every width real; two layers in the language model (a local and a global one) and in the vision tower. The
    photo is 224 px with 16 image tokens (SigLIP's 16 x 16 patches pooled 4 x 4, the pooling 896 px and 256 tokens
    have) and the world sees 112 px (2 x 2 world tokens a frame): bf16 matrix products are slow on a CPU without
    bf16 instructions, and these sizes change no layer's width."""
    return config_from_name(
        "gemma-3-4b",
        text_config={"num_hidden_layers": 2, "layer_types": ["sliding_attention", "full_attention"]},
        vision_config={"num_hidden_layers": 2, "image_size": 224},
        mm_tokens_per_image=16,
        world_image_size=112,
        **overrides,
    )


@pytest.mark.slow
def test_real_widths_answer_about_a_photo_in_bf16():
    """The shapes and dtypes at real width: a photo through the 1152-wide SigLIP, the real Wan VAE and the
    dynamics, and world tokens into 2560-wide layers with the 262k vocabulary, all in bf16."""
    model = build_random(TheWorld, two_layer_real_width())
    # The VAE (and the dynamics it feeds) in fp32, as diffusers' Wan pipelines keep the VAE: bf16 3D convolutions
    # crawl on a CPU without bf16 instructions.
    model.world_encoder.float(), model.dynamics.float()
    config = model.config
    prompt = [2, 105, 2364, 107, config.boi_token_id] + [config.image_token_id] * 16 + [config.eoi_token_id, 106, 107]
    input_ids = torch.tensor([prompt])
    token_type_ids = (input_ids == config.image_token_id).long()
    pixel_values = torch.rand(1, 3, 224, 224) * 2 - 1
    latents = model.imagine(pixel_values.to(torch.bfloat16), 1)
    assert latents.shape == (1, 2, 16, 14, 14)
    assert not torch.equal(latents[:, 1], latents[:, 0])  # the random dynamics moves the scene
    tokens = model.project_world(latents.to(torch.bfloat16))[0]
    assert tokens.shape == (1, 2 * 4, 2560) and tokens.dtype == torch.bfloat16
    outputs = {
        steps: model.generate(
            input_ids,
            pixel_values=pixel_values,
            token_type_ids=token_type_ids,
            num_world_steps=steps,
            max_new_tokens=2,
            min_new_tokens=2,
            do_sample=False,
            return_dict_in_generate=True,
            output_logits=True,
        )
        for steps in (0, 1)
    }
    for output in outputs.values():
        assert output.sequences.shape == (1, len(prompt) + 2)
        assert torch.equal(output.sequences[:, : len(prompt)], input_ids)
        assert output.logits[0].shape == (1, config.text_config.vocab_size)
        assert torch.isfinite(output.logits[1]).all()
    assert not torch.equal(outputs[0].logits[0], outputs[1].logits[0])  # the imagined frame reaches the answer


@pytest.mark.slow
def test_the_gpu_benchmark_dry_run_runs_every_row_on_cpu():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("|")}
    assert {"transformers generate", "TheWorld generate, world off", "TheWorld generate, 1 world step"} <= rows
    assert "bandwidth limit" in result.stdout and "fraction" in result.stdout
