"""How `TheWorld.from_pretrained` reads a checkpoint: a saved TheWorld, a Gemma 3 (multimodal or text-only) that
gets fresh world parts, or a GGUF file, from a local folder or the Hub.

A saved TheWorld and a multimodal Gemma 3 both load through transformers' own `from_pretrained` (the caller
hands it in), so the Hub cache, offline mode, dtypes and key conversions work as for Gemma 3. A text-only Gemma 3
(e.g. Gemma 3 270M) is wrapped in the multimodal class exactly as Gemma 3 4B's language model is, with a small
fresh vision tower.

Weights are read from safetensors only: a folder whose weights are pickles (`pytorch_model.bin`, `.pt`, ...) is
refused before a byte of them is read, since unpickling can run code, and a truncated or corrupt safetensors file
is named with the fix before any model is built. `use_safetensors=False` is transformers' own opt-in to pickles,
for files the caller trusts.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from huggingface_hub import snapshot_download
from transformers import AutoConfig, AutoProcessor, Gemma3Config, Gemma3ForCausalLM, PreTrainedModel

from theworld.modeling.configuration_theworld import TheWorldConfig
from theworld.modeling.dynamics import build_dynamics
from theworld.modeling.gguf import GGUF_MODELS, convert_gguf_to_folder, is_base_gguf, resolve_gguf
from theworld.modeling.names import locate_model
from theworld.modeling.presets import SMALL_SIGLIP
from theworld.modeling.world_encoder import VAE_CLASSES

__all__ = [
    "HUB_KWARGS",
    "WORLD_SIZES",
    "CheckpointSummary",
    "attach_cosmos_dynamics",
    "attach_new_world",
    "check_weights",
    "describe_checkpoint",
    "download_checkpoint",
    "load_pretrained",
    "load_processor",
]

# The keyword arguments of `from_pretrained` that say where and how to fetch files from the Hub.
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision")
# The world's sizes `from_pretrained` takes for a Gemma 3 checkpoint that gets a fresh world (e.g. a preset's,
# `presets.preset_world`); a saved TheWorld has its own in its config.
WORLD_SIZES = (
    "world_image_size",
    "world_pool",
    "world_projector_hidden_size",
    "max_world_steps",
    "num_world_steps",
    "dynamics_config",
)

# Files that hold pickles: transformers' and PyTorch's usual names for weights saved with torch.save.
_PICKLE_SUFFIXES = (".bin", ".bin.index.json", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# torch.save writes a zip archive; a bare pickle starts with the PROTO opcode.
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")
# safetensors refuses longer headers; a longer "length" means the file is something else.
_MAX_HEADER = 100_000_000
_CONVERT = (
    "convert them once, where you trust them: TheWorld.from_pretrained(folder, use_safetensors=False)"
    ".save_pretrained(folder) writes model.safetensors"
)
_REDO = "download it again, or save the model again with save_pretrained"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


class CheckpointSummary(NamedTuple):
    """What a checkpoint is, read from its config (or a GGUF file's metadata) without loading its weights."""

    path: str  # what `from_pretrained` loads: a folder, a Hub id, or a GGUF file
    model_type: str  # "theworld", "gemma3" or "gemma3_text"
    is_base: bool  # pretrained only: it continues text and has no chat template
    can_see: bool  # it has a trained vision tower, so an image or a video means something to it


def describe_checkpoint(name: str | Path, **hub_kwargs: Any) -> CheckpointSummary:
    """The summary of the checkpoint `name` leads to (see `names.locate_model`), from its config alone, so that a
    caller can refuse what the model cannot take before its weights load."""
    path, offline = locate_model(name, **hub_kwargs)
    if path in GGUF_MODELS or path.endswith(".gguf"):
        gguf = resolve_gguf(path)
        return CheckpointSummary(str(gguf), "gemma3_text", is_base_gguf(gguf), can_see=False)
    if offline:
        hub_kwargs["local_files_only"] = True
    config = AutoConfig.from_pretrained(path, **hub_kwargs)
    is_base = bool(getattr(config, "theworld_is_base_model", False))
    # A text-only Gemma 3 gets a fresh, untrained vision tower (see `_from_text_checkpoint`).
    can_see = config.model_type != "gemma3_text" and not is_base
    return CheckpointSummary(path, config.model_type, is_base, can_see)


def load_processor(path: str | Path, local_files_only: bool = False):
    """The processor saved with a checkpoint (a text-only one's tokenizer), with one clear line when a folder has
    no tokenizer."""
    folder = Path(path)
    if folder.is_dir() and not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise FileNotFoundError(
            f"{path} has no tokenizer ({' or '.join(_TOKENIZER_FILES)}); copy the tokenizer files of the model it "
            "was trained from into it, or save them there with processor.save_pretrained(folder)"
        )
    try:
        return AutoProcessor.from_pretrained(path, local_files_only=local_files_only)
    except ValueError as error:  # transformers spreads some accounts over lines: keep them whole on one
        raise ValueError(f"Cannot load the processor of {path}: {' '.join(str(error).split())}") from error


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
    dynamics_type: str | None = None,
    **kwargs: Any,
) -> PreTrainedModel:
    """`TheWorld.from_pretrained` (see there); `transformers_from_pretrained` is transformers' own, bound to `cls`."""
    if dynamics_type not in (None, "cosmos"):
        raise ValueError(f"dynamics_type must be 'cosmos' (or left out), got {dynamics_type!r}")
    if dynamics_type == "cosmos" and cosmos_model_name is None:
        raise ValueError(
            "dynamics_type='cosmos' needs cosmos_model_name=, the Cosmos-Predict2 or Predict2.5 diffusers folder "
            "(or Hub id) whose transformer and scheduler imagine the future"
        )
    hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
    gguf_file = kwargs.pop("gguf_file", None)
    if gguf_file is not None:
        path = str(Path(pretrained_model_name_or_path) / gguf_file)
    else:
        located = {key: value for key, value in hub_kwargs.items() if key != "force_download"}
        path, offline = locate_model(pretrained_model_name_or_path, subfolder=kwargs.get("subfolder", ""), **located)
        if offline:
            kwargs["local_files_only"] = hub_kwargs["local_files_only"] = True
    if path in GGUF_MODELS or path.endswith(".gguf"):
        # Dequantized once into a cached safetensors folder: later loads skip the conversion.
        path = str(convert_gguf_to_folder(resolve_gguf(path)))
    if config is None:
        config = AutoConfig.from_pretrained(path, subfolder=kwargs.get("subfolder", ""), **hub_kwargs)
    if kwargs.get("use_safetensors") is not False and config.model_type in ("theworld", "gemma3", "gemma3_text"):
        kwargs["use_safetensors"] = True  # transformers then never fetches nor reads a pickle from the Hub either
        if Path(path).is_dir():
            check_weights(Path(path) / kwargs.get("subfolder", ""), kwargs.get("variant"))
    new_world = False
    if isinstance(config, TheWorldConfig):
        if enable_world is not None:
            config.enable_world = enable_world
    elif config.model_type == "gemma3":
        world = {"enable_world": True if enable_world is None else enable_world}
        world.update({key: kwargs.pop(key) for key in WORLD_SIZES if key in kwargs})
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
    if dynamics_type == "cosmos":
        attach_cosmos_dynamics(model, cosmos_model_name, hub_kwargs)
    return model


def attach_cosmos_dynamics(model: PreTrainedModel, folder: str, hub_kwargs: dict) -> None:
    """Make a Cosmos predictor's transformer and scheduler (a Cosmos-Predict2/2.5 diffusers folder or Hub id) the
    model's dynamics, with the prompt embeddings of the folder's text encoder (`cosmos_dynamics`)."""
    from theworld.modeling.cosmos_dynamics import cosmos_dynamics_config

    if not model.config.enable_world:
        raise ValueError("dynamics_type='cosmos' needs the world model; load with enable_world=True")
    from accelerate import init_empty_weights

    reference = model.lm_head.weight
    dynamics_config, weights = cosmos_dynamics_config(folder, dtype=reference.dtype, **hub_kwargs)
    with init_empty_weights():  # the loaded transformer's tensors are the weights: no second, random copy
        dynamics = build_dynamics(model.world_encoder.latent_channels, dynamics_config)
    dynamics.load_state_dict(weights, strict=False, assign=True)  # prompt embeddings: zeros without a text encoder
    model.dynamics = dynamics.to(device=reference.device, dtype=reference.dtype)
    model.config.dynamics_config = dynamics_config


def _from_text_checkpoint(
    cls: type[PreTrainedModel], path: str, text_config, enable_world: bool | None, kwargs: dict
) -> PreTrainedModel:
    """A text-only Gemma 3 as TheWorld's language model; vision and world parts are attached freshly
    initialised, for training."""
    vision_config = kwargs.pop("vision_config", None) or {**SMALL_SIGLIP, "model_type": "siglip_vision_model"}
    gemma_config = Gemma3Config(text_config=text_config.to_dict(), vision_config=vision_config, mm_tokens_per_image=64)
    config = TheWorldConfig.from_gemma3(gemma_config, enable_world=True if enable_world is None else enable_world)
    config.theworld_is_base_model = getattr(text_config, "theworld_is_base_model", None)
    text_model = Gemma3ForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=kwargs["use_safetensors"])
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
        vae = vae_class.from_pretrained(
            cosmos_model_name, subfolder=cosmos_subfolder, use_safetensors=True, **hub_kwargs
        )
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


def check_weights(folder: Path, variant: str | None = None) -> None:
    """Refuse a model folder whose weights are pickles, missing, truncated or corrupt, reading no byte of a pickle
    and only the headers of safetensors files."""
    stem = f"model.{variant}" if variant else "model"
    index = folder / f"{stem}.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [folder / shard for shard in shards]
    elif (folder / f"{stem}.safetensors").is_file():
        files = [folder / f"{stem}.safetensors"]
    else:
        pickles = sorted(path.name for path in folder.iterdir() if path.name.endswith(_PICKLE_SUFFIXES))
        if pickles:
            raise OSError(
                f"{folder} holds pickle weights ({', '.join(pickles)}) and no {stem}.safetensors; TheWorld loads "
                f"safetensors only, since unpickling can run code; {_CONVERT}"
            )
        raise FileNotFoundError(
            f"{folder} has no weights ({stem}.safetensors); pass a folder saved with save_pretrained"
        )
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"{file} is missing, yet {index.name} lists it; {_REDO}")
        _check_safetensors(file)


def _check_safetensors(file: Path) -> None:
    """A safetensors file is an 8-byte header length, a JSON header giving each tensor's byte range, then the
    bytes: check that the header parses and the file holds every range."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        prefix = handle.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else 0
        if size - 8 < length <= _MAX_HEADER:
            raise OSError(f"{file} is truncated (it ends inside its header, at {size} bytes); {_REDO}")
        header = handle.read(length) if 0 < length <= _MAX_HEADER else b""
    try:
        entries = json.loads(header)
        end = max((entry["data_offsets"][1] for key, entry in entries.items() if key != "__metadata__"), default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        # Only a file that is no safetensors is asked whether it is a pickle: a real header length may begin 0x80.
        if prefix.startswith(_PICKLE_MAGIC):
            raise OSError(
                f"{file} is a pickle (torch.save), not safetensors, and is not read, since unpickling can run code; "
                "save the model again with save_pretrained, which writes safetensors"
            ) from None
        raise OSError(f"{file} is corrupt: it is not a safetensors file (its header does not parse); {_REDO}") from None
    if 8 + length + end > size:
        raise OSError(f"{file} is truncated ({size} of its {8 + length + end} bytes); {_REDO}")
