"""World generation, Cosmos style: specs in, one folder of frames/mp4/gif per sample out.

- `spec`: Cosmos-Predict2.5 JSON and Cosmos-Predict1 JSONL specs (`load_specs`), validated by pydantic.
- `backends`: the `WorldBackend` protocol, `WorldRequest`, and `get_backend` / `register_backend`.
- `autoregressive`: the shipped "toyworld" backend; `diffusion`: diffusers' Cosmos pipelines as a backend.
- `guardrail`: prompt/output safety checks, also usable as a pipeline's `safety_checker`.
- `io`, `runner`: a sample's input and its atomic output folder, batches across torchrun ranks.

Importing this package registers the built-in backends: "toyworld" by name and any folder the
autoregressive recipe wrote, then diffusers Cosmos pipelines by folder or hub id. Its other names import their
module on first use, so reading and checking specs costs no torch.
"""

from importlib import import_module
from pathlib import Path
from typing import Any

from theworld.world.backends import DEFAULT_BACKEND, register_backend, register_model_format

# Each submodule and the names it exports here.
_EXPORTS = {
    "backends": (
        "INFERENCE_TYPES",
        "OffloadOptions",
        "WorldBackend",
        "WorldRequest",
        "get_backend",
        "register_backend",
        "register_model_format",
    ),
    "guardrail": ("Guardrail", "load_guardrail"),
    "spec": ("SpecError", "WorldSpec", "load_specs"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)

_AUTOREGRESSIVE = "theworld.world.autoregressive.backend:load_backend"


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})


def _is_autoregressive_folder(name_or_path: str) -> bool:
    return (Path(name_or_path).expanduser() / "world_model.json").is_file()


def _is_diffusers_pipeline(name_or_path: str) -> bool:
    from theworld.world.diffusion import is_diffusers_pipeline  # diffusion imports torch: only when asked

    return is_diffusers_pipeline(name_or_path)


register_backend(DEFAULT_BACKEND, _AUTOREGRESSIVE)
register_model_format(_is_autoregressive_folder, _AUTOREGRESSIVE)
register_model_format(_is_diffusers_pipeline, "theworld.world.diffusion:CosmosDiffusionBackend.from_pretrained")
