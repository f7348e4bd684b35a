"""World generation, Cosmos style: specs in, one folder of frames/mp4/gif per sample out.

- `spec`: Cosmos-Predict2.5 JSON and Cosmos-Predict1 JSONL specs (`load_specs`), validated by pydantic.
- `backends`: the `WorldBackend` protocol, `WorldRequest`, and `get_backend` / `register_backend`.
- `autoregressive`: the shipped "toyworld" backend; `diffusion`: diffusers' Cosmos pipelines as a backend.
- `guardrail`: prompt/output safety checks, also usable as a pipeline's `safety_checker`.
- `io`, `runner`: a sample's input and its atomic output folder, batches across torchrun ranks.

Importing this package registers the built-in backends: "toyworld" by name and any folder the
autoregressive recipe wrote, then diffusers Cosmos pipelines by folder or hub id.
"""

from pathlib import Path

from theworld.world.backends import (
    DEFAULT_BACKEND,
    INFERENCE_TYPES,
    OffloadOptions,
    WorldBackend,
    WorldRequest,
    get_backend,
    register_backend,
    register_model_format,
)
from theworld.world.diffusion import is_diffusers_pipeline
from theworld.world.guardrail import Guardrail, load_guardrail
from theworld.world.spec import SpecError, WorldSpec, load_specs

__all__ = [
    "INFERENCE_TYPES",
    "Guardrail",
    "OffloadOptions",
    "SpecError",
    "WorldBackend",
    "WorldRequest",
    "WorldSpec",
    "get_backend",
    "load_guardrail",
    "load_specs",
    "register_backend",
    "register_model_format",
]

_AUTOREGRESSIVE = "theworld.world.autoregressive.backend:load_backend"


def _is_autoregressive_folder(name_or_path: str) -> bool:
    return (Path(name_or_path).expanduser() / "world_model.json").is_file()


register_backend(DEFAULT_BACKEND, _AUTOREGRESSIVE)
register_model_format(_is_autoregressive_folder, _AUTOREGRESSIVE)
register_model_format(is_diffusers_pipeline, "theworld.world.diffusion:CosmosDiffusionBackend.from_pretrained")
