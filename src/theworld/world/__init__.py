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

from pathlib import Path

import lazy_loader

from theworld.world.backends import DEFAULT_BACKEND, register_backend, register_model_format

# Each submodule and the names it exports here, imported on first use (lazy_loader, as scikit-image does).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "backends": [
            "INFERENCE_TYPES",
            "OffloadOptions",
            "WorldBackend",
            "WorldRequest",
            "get_backend",
            "register_backend",
            "register_model_format",
        ],
        "guardrail": ["Guardrail", "load_guardrail"],
        "spec": ["SpecError", "WorldSpec", "load_specs"],
    },
)

_AUTOREGRESSIVE = "theworld.world.autoregressive.backend:load_backend"


def _is_autoregressive_folder(name_or_path: str) -> bool:
    return (Path(name_or_path).expanduser() / "world_model.json").is_file()


def _is_diffusers_pipeline(name_or_path: str) -> bool:
    from theworld.world.diffusion import is_diffusers_pipeline  # diffusion imports torch: only when asked

    return is_diffusers_pipeline(name_or_path)


register_backend(DEFAULT_BACKEND, _AUTOREGRESSIVE)
register_model_format(_is_autoregressive_folder, _AUTOREGRESSIVE)
register_model_format(_is_diffusers_pipeline, "theworld.world.diffusion:CosmosDiffusionBackend.from_pretrained")
