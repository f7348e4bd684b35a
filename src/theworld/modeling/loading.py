"""How `TheWorld.from_pretrained` reads a checkpoint: a saved TheWorld, a Gemma 3 (multimodal or text-only) that
gets fresh world parts, or a GGUF file, from a local folder or the Hub.

A saved TheWorld and a multimodal Gemma 3 both load through transformers' own `from_pretrained` (the caller
hands it in), so the Hub cache, offline mode, dtypes and key conversions work as for Gemma 3. A text-only Gemma 3
(e.g. Gemma 3 270M) is wrapped in the multimodal class exactly as Gemma 3 4B's language model is, with a small
fresh vision tower.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from transformers import AutoConfig, Gemma3Config, Gemma3ForCausalLM, PreTrainedModel

from theworld.modeling.configuration_theworld import TheWorldConfig
from theworld.modeling.gguf import GGUF_MODELS, convert_gguf_to_folder, resolve_gguf
from theworld.modeling.names import resolve_model_name
from theworld.modeling.presets import SMALL_SIGLIP
from theworld.modeling.world_encoder import VAE_CLASSES

__all__ = ["HUB_KWARGS", "attach_new_world", "download_checkpoint", "load_pretrained"]

# The keyword arguments of `from_pretrained` that say where and how to fetch files from the Hub.
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision")


def load_pretrained(
    cls: type[PreTrainedModel],
    transformers_from_pretrained: Callable[..., PreTrainedModel],
    pretrained_model_name_or_path: str | Path,
    *model_args: Any,
    enable_world: bool | None,
    cosmos_model_name: str | None,
    cosmos_subfolder: str | None,
    world_encoder_type: str,
    config: TheWorldConfig | None,
    **kwargs: Any,
) -> PreTrainedModel:
    """`TheWorld.from_pretrained` (see there); `transformers_from_pretrained` is transformers' own, bound to `cls`."""
    path = resolve_model_name(pretrained_model_name_or_path)
    gguf_file = kwargs.pop("gguf_file", None)
    if gguf_file is not None or path in GGUF_MODELS or path.endswith(".gguf"):
        # Dequantized once into a cached safetensors folder: later loads skip the conversion.
        path = str(convert_gguf_to_folder(resolve_gguf(Path(path) / gguf_file if gguf_file else path)))
    hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
    if config is None:
        config = AutoConfig.from_pretrained(path, subfolder=kwargs.get("subfolder", ""), **hub_kwargs)
    new_world = False
    if isinstance(config, TheWorldConfig):
        if enable_world is not None:
            config.enable_world = enable_world
    elif config.model_type == "gemma3":
        world = {"enable_world": True if enable_world is None else enable_world}
        if cosmos_model_name is not None:
            world["world_encoder_type"] = world_encoder_type
            world["world_encoder_config"] = _vae_config(
                world_encoder_type, cosmos_model_name, cosmos_subfolder, hub_kwargs
            )
        config = TheWorldConfig.from_gemma3(config, **world)
        new_world = config.enable_world
    elif config.model_type == "gemma3_text":
        return _from_text_checkpoint(cls, path, config, enable_world, kwargs)
    else:
        raise ValueError(
            f"{path} holds a {config.model_type!r} model; TheWorld loads Gemma 3 ('gemma3', 'gemma3_text') "
            "and TheWorld ('theworld') checkpoints"
        )
    model = transformers_from_pretrained(path, *model_args, config=config, **kwargs)
    if new_world:
        attach_new_world(model, cosmos_model_name, cosmos_subfolder, hub_kwargs)
    elif config.enable_world:
        model.world_encoder.restore_derived_buffers()
    return model


def _from_text_checkpoint(
    cls: type[PreTrainedModel], path: str, text_config, enable_world: bool | None, kwargs: dict
) -> PreTrainedModel:
    """A text-only Gemma 3 as TheWorld's language model; vision and world parts are attached freshly
    initialised, for training."""
    vision_config = kwargs.pop("vision_config", None) or {**SMALL_SIGLIP, "model_type": "siglip_vision_model"}
    gemma_config = Gemma3Config(text_config=text_config.to_dict(), vision_config=vision_config, mm_tokens_per_image=64)
    config = TheWorldConfig.from_gemma3(gemma_config, enable_world=True if enable_world is None else enable_world)
    config.theworld_is_base_model = getattr(text_config, "theworld_is_base_model", None)
    text_model = Gemma3ForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = cls(config)
    model.model.language_model.load_state_dict(text_model.model.state_dict())
    model.tie_weights()
    model.generation_config = text_model.generation_config
    model.name_or_path = path
    if config.enable_world:
        attach_new_world(model, None, None, {})
    dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
    return model.to(dtype=dtype if isinstance(dtype, torch.dtype) else None).eval()


def attach_new_world(
    model: PreTrainedModel, cosmos_model_name: str | None, cosmos_subfolder: str | None, hub_kwargs: dict
) -> None:
    """Fresh world parts for a Gemma 3 checkpoint: room for the world tokens, new modules, Cosmos VAE weights."""
    config = model.config
    vocab_size = max(*config.world_token_ids, config.image_token_id) + 1
    if vocab_size > config.text_config.vocab_size:
        model.resize_token_embeddings(vocab_size, mean_resizing=False)
    reference = model.lm_head.weight
    model._build_world_modules()
    for name in ("world_encoder", "dynamics", "world_projector", "object_reader"):
        if not hasattr(model, name):
            continue
        module = getattr(model, name)
        module.apply(model._init_weights)
        module.to(device=reference.device, dtype=reference.dtype)
    if cosmos_model_name is not None:
        vae_class = type(model.world_encoder.vae)
        vae = vae_class.from_pretrained(cosmos_model_name, subfolder=cosmos_subfolder, **hub_kwargs)
        model.world_encoder.vae.load_state_dict(vae.state_dict())


def download_checkpoint(repo_id: str, checkpoint_name: str | None, hub_kwargs: dict) -> Path:
    """The local folder of a training checkpoint (e.g. "checkpoint-1000") stored inside a Hub repo, or of the
    whole repo without a name."""
    hub_kwargs = {key: value for key, value in hub_kwargs.items() if key != "force_download"}
    patterns = [f"{checkpoint_name}/*"] if checkpoint_name else None
    local = Path(snapshot_download(repo_id, allow_patterns=patterns, **hub_kwargs))
    folder = local / checkpoint_name if checkpoint_name else local
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{repo_id} has no checkpoint {checkpoint_name!r} (no {folder.name}/config.json)")
    return folder


def _vae_config(encoder_type: str, name: str, subfolder: str | None, hub_kwargs: dict) -> dict:
    config = dict(VAE_CLASSES[encoder_type].load_config(name, subfolder=subfolder, **hub_kwargs))
    return {key: value for key, value in config.items() if not key.startswith("_")}
