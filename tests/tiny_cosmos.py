"""Tiny random Cosmos pipelines saved in real diffusers format, for the world-generation tests on CPU.

`save_tiny_cosmos_pipeline(path)` writes a folder that `get_backend(path)` loads exactly like a real
checkpoint. The weights are random: the frames are noise, the shapes and code paths are the real ones.
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["save_tiny_cosmos_pipeline"]

_CORPUS = ["a robot arm pushes a red cube across a wooden table", "a ball rolls down a ramp and bounces"] * 8
_QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{{ part['text'] }}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
)


def _qwen_text_encoder():
    """A byte-level BPE Qwen2 tokenizer with a chat template, and a 2-layer Qwen2.5-VL."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_CORPUS, trainer)
    tokenizer = Qwen2TokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = _QWEN_CHAT_TEMPLATE
    config = Qwen2_5_VLConfig(
        bos_token_id=0,
        eos_token_id=2,
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=1024,
            rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
            bos_token_id=0,
            eos_token_id=2,
        ),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=16),
    )
    return tokenizer, Qwen2_5_VLForConditionalGeneration(config).eval(), 2 * 16


def _t5_text_encoder():
    """A Unigram T5 tokenizer and a 1-layer T5 encoder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=100, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    unigram.train_from_iterator(_CORPUS, trainer)
    tokenizer = T5TokenizerFast(
        tokenizer_object=unigram, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0
    )
    config = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    return tokenizer, T5EncoderModel(config).eval(), 16


def save_tiny_cosmos_pipeline(path: str | Path, family: str = "predict2.5", seed: int = 0) -> Path:
    """Build a tiny random "predict2.5" or "predict2" pipeline and `save_pretrained` it to `path`.

    It handles 64x64 (multiples of 16 up to 128) and up to 13 frames.
    """
    import diffusers

    from theworld.world.guardrail import load_guardrail

    torch.manual_seed(seed)
    if family == "predict2.5":
        tokenizer, text_encoder, text_dim = _qwen_text_encoder()
        projection = dict(use_crossattn_projection=True, crossattn_proj_in_channels=text_dim)
        text_dim, projection["encoder_hidden_states_channels"] = 16, 16
        scheduler = diffusers.UniPCMultistepScheduler(
            use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=1.0
        )
        pipeline_class = diffusers.Cosmos2_5_PredictBasePipeline
    elif family == "predict2":
        tokenizer, text_encoder, text_dim = _t5_text_encoder()
        projection = {}
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True)
        pipeline_class = diffusers.Cosmos2VideoToWorldPipeline
    else:
        raise ValueError(f"unknown family {family!r}; use 'predict2.5' or 'predict2'")
    z_dim = 4
    vae = diffusers.AutoencoderKLWan(
        base_dim=8,
        z_dim=z_dim,
        dim_mult=[1, 1, 1, 1],  # spatial factor 8, matching the pipelines' 2**len(temperal_downsample)
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
    )
    transformer = diffusers.CosmosTransformer3DModel(
        in_channels=z_dim + 1,
        out_channels=z_dim,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=1,
        mlp_ratio=2,
        text_embed_dim=text_dim,
        adaln_lora_dim=4,
        max_size=(4, 16, 16),
        patch_size=(1, 2, 2),
        concat_padding_mask=False,  # the padding-mask resize needs torchvision
        **projection,
    )
    pipe = pipeline_class(
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
        safety_checker=load_guardrail(),
    )
    path = Path(path)
    pipe.save_pretrained(path)
    return path
