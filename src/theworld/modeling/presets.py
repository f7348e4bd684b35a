"""Named TheWorld configurations, litgpt style: `config_from_name(name, tokenizer, **overrides)`.

Presets set sizes only; the token ids come from the tokenizer the model will be used with, and the names of the
objects an object reader reads come from the world the model is trained on (`preset_world_objects`): the model
knows a world's vocabulary only through its config. The exception is a preset of a released checkpoint
(`gemma-3-4b`): its vocabulary and token ids are the checkpoint's own, so it needs no tokenizer, and its world
tokens get the ids `TheWorld.from_pretrained` gives them when it loads that checkpoint (`preset_world`).
"""

import copy
from collections.abc import Sequence
from typing import Any

from transformers import Gemma3Config, PreTrainedTokenizerBase

from theworld.modeling.configuration_theworld import TINY_WAN_VAE, TheWorldConfig

__all__ = [
    "PRESETS",
    "SMALL_SIGLIP",
    "WAN21_VAE",
    "config_from_name",
    "preset_world",
    "preset_world_objects",
    "resolve_world_objects",
]

# A small SigLIP (about 10M parameters at 224 px): the 100M preset's, and the vision tower a text-only Gemma 3
# gets when TheWorld wraps it, freshly initialised.
SMALL_SIGLIP = {
    "hidden_size": 384,
    "intermediate_size": 1536,
    "num_hidden_layers": 6,
    "num_attention_heads": 6,
    "image_size": 224,
    "patch_size": 14,
}

# Cosmos-Predict2's VAE is Wan2.1's (diffusers' convert_cosmos_to_diffusers.py takes it from
# Wan-AI/Wan2.1-T2V-1.3B-Diffusers): 8x smaller per side, 4x in time, 16 latent channels, and the latent statistics
# that checkpoint's config.json holds.
_WAN21_MEAN = (
    "-0.7571 -0.7089 -0.9113 0.1075 -0.1745 0.9653 -0.1517 1.5508 "
    "0.4134 -0.0715 0.5517 -0.3632 -0.1922 -0.9497 0.2503 -0.2921"
)
_WAN21_STD = (
    "2.8184 1.4541 2.3275 2.6558 1.2196 1.7708 2.6052 2.0743 3.2687 2.1526 2.8652 1.5579 1.6382 1.1253 2.8251 1.9160"
)
WAN21_VAE = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
    "latents_mean": [float(v) for v in _WAN21_MEAN.split()],
    "latents_std": [float(v) for v in _WAN21_STD.split()],
}

PRESETS: dict[str, dict[str, Any]] = {
    # A few hundred thousand parameters: what the tests build and save in a second.
    "test": {
        "text": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
        },
        "vision": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        "mm_tokens_per_image": 4,
        "world": {
            "world_image_size": 32,
            "world_pool": 2,
            "dynamics_config": {"hidden_channels": 16, "num_blocks": 1},
        },
    },
    # The shipped default, trained from scratch on ToyWorld by theworld.training (64x64 frames).
    "theworld-tiny": {
        "text": {
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
        },
        "vision": {
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 64,
            "patch_size": 8,
        },
        "mm_tokens_per_image": 16,
        "world": {
            "world_image_size": 64,
            "world_pool": 8,  # 2x2 world tokens per frame, each a quadrant; space-to-depth keeps every value
            # And one per object per frame, from the object reader, which also decodes facts and reads kind words;
            # the names and kinds are the world's (`preset_world_objects`).
            "world_objects": {"hidden_size": 96},
            "num_world_steps": 4,
            "max_world_steps": 4,
            "world_encoder_config": TINY_WAN_VAE,
            "dynamics_config": {"hidden_channels": 64, "num_blocks": 2, "downsample": True},
        },
    },
    # About 100M parameters: the benchmark's "real-size on CPU" point.
    "100m": {
        "text": {
            "hidden_size": 640,
            "intermediate_size": 2048,
            "num_hidden_layers": 12,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "head_dim": 256,
        },
        "vision": SMALL_SIGLIP,
        "mm_tokens_per_image": 64,
        "world": {
            "world_image_size": 128,
            "world_pool": 4,
            "world_encoder_config": {
                "base_dim": 32,
                "z_dim": 16,
                "dim_mult": [1, 2, 4, 4],
                "num_res_blocks": 1,
                "temperal_downsample": [False, True, True],
                "latents_mean": [0.0] * 16,
                "latents_std": [1.0] * 16,
            },
            "dynamics_config": {"hidden_channels": 128, "num_blocks": 3},
        },
    },
    # google/gemma-3-4b-it's own config (text and SigLIP-so400m at 896 px) with Cosmos-Predict2's VAE: what
    # `TheWorld.from_pretrained("google/gemma-3-4b-it", cosmos_model_name=..., **preset_world("gemma-3-4b"))`
    # builds, here buildable without a download (`theworld.modeling.random_init`).
    "gemma-3-4b": {
        "text": {
            "hidden_size": 2560,
            "intermediate_size": 10240,
            "num_hidden_layers": 34,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
            "head_dim": 256,
            "query_pre_attn_scalar": 256,
            "sliding_window": 1024,
            "max_position_embeddings": 131072,
            # Local layers: RoPE base 10k over the 1024-token window; global layers: base 1M, stretched 8x (linear)
            # for the 128k context.
            "rope_parameters": {
                "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
            },
        },
        "vision": {
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_hidden_layers": 27,
            "num_attention_heads": 16,
            "image_size": 896,
            "patch_size": 14,
            "vision_use_head": False,
        },
        "mm_tokens_per_image": 256,
        # Gemma 3's tokenizer: 262144 pieces plus 64 unused rows; <start_of_image>, <end_of_image> and the image
        # placeholder at their fixed ids.
        "token_ids": {
            "vocab_size": 262_208,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "bos_token_id": 2,
            "boi_token_index": 255_999,
            "eoi_token_index": 256_000,
            "image_token_index": 262_144,
        },
        "world": {
            # The world sees the photo at 448 px: a 56 x 56 latent, merged 7 x 7 into 8 x 8 = 64 world tokens per
            # frame. A quarter of the image's own 256 tokens, so four imagined steps cost as many prefill tokens as
            # the image does; the 896 px detail is already in the SigLIP tokens, and the VAE at 448 px costs a
            # quarter of what it costs at 896.
            "world_image_size": 448,
            "world_pool": 7,
            "max_world_steps": 4,
            "num_world_steps": 1,
            "world_encoder_config": WAN21_VAE,
            # At half the latent's resolution (28 x 28): its cost per step is small next to the language model's
            # for the step's 64 tokens (`benchmarks/real_size.py --paper`).
            "dynamics_config": {"hidden_channels": 256, "num_blocks": 4, "downsample": True},
        },
    },
}


def config_from_name(name: str, tokenizer: PreTrainedTokenizerBase | None = None, **overrides: Any) -> TheWorldConfig:
    """A TheWorldConfig of preset `name` whose vocabulary and special tokens are `tokenizer`'s, or the checkpoint's
    own for a preset that has them (`gemma-3-4b`, which then needs no tokenizer). `text_config` and `vision_config`
    overrides are dicts merged into the preset's (e.g. `text_config={"num_hidden_layers": 2}`); the rest set
    TheWorldConfig fields."""
    preset = _preset(name)
    fixed_ids = preset.get("token_ids")
    if fixed_ids is None and tokenizer is None:
        raise ValueError(
            f"The preset {name!r} takes its token ids from a tokenizer: config_from_name({name!r}, tokenizer)"
        )
    text = {
        "query_pre_attn_scalar": preset["text"]["head_dim"],
        "sliding_window": 512,
        "max_position_embeddings": 4096,
        **preset["text"],
        **overrides.pop("text_config", {}),
    }
    if fixed_ids is None and "layer_types" not in text:
        # Gemma 3's 5 local : 1 global pattern (a global layer every sixth), ending on a global layer. A checkpoint's
        # preset keeps transformers' own derivation of the pattern, as its config.json does.
        layers = text["num_hidden_layers"]
        text["layer_types"] = [
            "full_attention" if (i + 1) % 6 == 0 or i == layers - 1 else "sliding_attention" for i in range(layers)
        ]
    vision = dict(preset["vision"], model_type="siglip_vision_model", **overrides.pop("vision_config", {}))
    world = dict(copy.deepcopy(preset["world"]), **overrides)
    if fixed_ids is not None:
        return _checkpoint_config(name, fixed_ids, text, vision, preset["mm_tokens_per_image"], world, tokenizer)
    text.update(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    fields: dict[str, Any] = dict(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=preset["mm_tokens_per_image"],
        boi_token_index=tokenizer.boi_token_id,
        eoi_token_index=tokenizer.eoi_token_id,
        image_token_index=tokenizer.image_token_id,
        start_of_world_token_id=tokenizer.convert_tokens_to_ids("<start_of_world>"),
        end_of_world_token_id=tokenizer.convert_tokens_to_ids("<end_of_world>"),
        world_token_id=tokenizer.convert_tokens_to_ids("<world_soft_token>"),
        **world,
    )
    if fields.get("world_objects") is not None:
        if "names" not in fields["world_objects"]:
            raise ValueError(
                f"The preset {name!r} has an object reader, which needs the names of the world's objects; pass "
                f"world_objects=preset_world_objects({name!r}, names, kinds)"
            )
        fields["world_objects"] = resolve_world_objects(fields["world_objects"], tokenizer)
    return TheWorldConfig(**fields)


def preset_world(name: str) -> dict[str, Any]:
    """Preset `name`'s world sizes as `TheWorld.from_pretrained` takes them for a Gemma 3 checkpoint that gets a
    fresh world (the VAE's config comes from `cosmos_model_name`): `from_pretrained("google/gemma-3-4b-it",
    cosmos_model_name=..., **preset_world("gemma-3-4b"))` builds what `config_from_name("gemma-3-4b")` describes."""
    world = copy.deepcopy(_preset(name)["world"])
    world.pop("world_encoder_config", None)
    world.pop("world_objects", None)
    return world


def _checkpoint_config(
    name: str,
    ids: dict[str, int],
    text: dict[str, Any],
    vision: dict[str, Any],
    mm_tokens_per_image: int,
    world: dict[str, Any],
    tokenizer: PreTrainedTokenizerBase | None,
) -> TheWorldConfig:
    """The config of a released checkpoint's preset, built as the load path builds it (`TheWorldConfig.from_gemma3`
    places the world tokens after the vocabulary), with the embeddings already grown to hold the world tokens, as
    `attach_new_world` grows them."""
    if tokenizer is not None and tokenizer.convert_tokens_to_ids("<start_of_image>") != ids["boi_token_index"]:
        raise ValueError(
            f"This tokenizer is not the one of the checkpoint preset {name!r} describes (its <start_of_image> id "
            f"differs); use that checkpoint's tokenizer, or call config_from_name({name!r}) without one"
        )
    token_ids = {key: value for key, value in ids.items() if not key.endswith("_index")}
    gemma = Gemma3Config(
        text_config=dict(text, **token_ids),
        vision_config=vision,
        mm_tokens_per_image=mm_tokens_per_image,
        boi_token_index=ids["boi_token_index"],
        eoi_token_index=ids["eoi_token_index"],
        image_token_index=ids["image_token_index"],
    )
    config = TheWorldConfig.from_gemma3(gemma, **world)
    config.text_config.vocab_size = max(*config.world_token_ids, config.image_token_id) + 1
    return config


def preset_world_objects(name: str, names: Sequence[str], kinds: Sequence[str]) -> dict[str, Any] | None:
    """Preset `name`'s object reader for a world whose objects are `names` (one slot each, e.g. ToyWorld's palette
    colours, since every ToyWorld shape has its own) and whose kinds are `kinds`, as `config_from_name` and
    `resolve_world_objects` take it; None when the preset has no object reader."""
    sizes = _preset(name)["world"].get("world_objects")
    if sizes is None:
        return None
    return {"names": list(names), "num_kinds": len(kinds), "kinds": list(kinds), **sizes}


def resolve_world_objects(world_objects: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """`world_objects` with each name's token id as it reads mid-sentence (" red"), and each kind word's: object
    slots start from these embeddings, and the prompt's mentions of them are found by these ids."""
    resolved = dict(world_objects, token_ids=_word_ids(world_objects["names"], tokenizer, "object name"))
    if world_objects.get("kinds") is not None:
        resolved["kind_token_ids"] = _word_ids(world_objects["kinds"], tokenizer, "kind word")
    return resolved


def _preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def _word_ids(words: list[str], tokenizer: PreTrainedTokenizerBase, what: str) -> list[int]:
    ids = []
    for word in words:
        pieces = tokenizer(f" {word}", add_special_tokens=False).input_ids
        if len(pieces) != 1:
            raise ValueError(f"The {what} {word!r} is {len(pieces)} tokens for this tokenizer; it must be one")
        ids.append(pieces[0])
    return ids
