"""Named TheWorld configurations, litgpt style: `config_from_name(name, tokenizer, **overrides)`.

Presets set sizes only; the token ids come from the tokenizer the model will be used with, and the names of the
objects an object reader reads come from the world the model is trained on (`preset_world_objects`): the model
knows a world's vocabulary only through its config.
"""

import copy
from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedTokenizerBase

from theworld.modeling.configuration_theworld import TINY_WAN_VAE, TheWorldConfig

__all__ = ["PRESETS", "SMALL_SIGLIP", "config_from_name", "preset_world_objects", "resolve_world_objects"]

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
}


def config_from_name(name: str, tokenizer: PreTrainedTokenizerBase, **overrides: Any) -> TheWorldConfig:
    """A TheWorldConfig of preset `name` whose vocabulary and special tokens are `tokenizer`'s."""
    preset = _preset(name)
    layers = preset["text"]["num_hidden_layers"]
    text = dict(
        preset["text"],
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        query_pre_attn_scalar=preset["text"]["head_dim"],
        sliding_window=512,
        max_position_embeddings=4096,
        # Gemma 3's 5 local : 1 global pattern, ending on a global layer.
        layer_types=[
            "full_attention" if (i + 1) % 6 == 0 or i == layers - 1 else "sliding_attention" for i in range(layers)
        ],
    )
    vision = dict(preset["vision"], model_type="siglip_vision_model")
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
        **copy.deepcopy(preset["world"]),
    )
    fields.update(overrides)
    if fields.get("world_objects") is not None:
        if "names" not in fields["world_objects"]:
            raise ValueError(
                f"The preset {name!r} has an object reader, which needs the names of the world's objects; pass "
                f"world_objects=preset_world_objects({name!r}, names, kinds)"
            )
        fields["world_objects"] = resolve_world_objects(fields["world_objects"], tokenizer)
    return TheWorldConfig(**fields)


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
