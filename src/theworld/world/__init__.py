"""World generation, Cosmos style: specs in, one folder of frames/mp4/gif per sample out.

- `spec`: Cosmos-Predict2.5 JSON and Cosmos-Predict1 JSONL specs (`load_specs`).
- `backends`: the `WorldBackend` protocol, `WorldRequest`, and `get_backend` / `register_backend`.
- `diffusion`: diffusers' Cosmos pipelines as a backend; `tiny`: tiny random ones for tests.
- `guardrail`: prompt/output safety checks, also usable as a pipeline's `safety_checker`.
- `io`, `runner`: reading inputs, atomic per-sample output folders, batches across torchrun ranks.
"""

from theworld.world.backends import (
    INFERENCE_TYPES,
    OffloadOptions,
    WorldBackend,
    WorldRequest,
    get_backend,
    register_backend,
)
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
]
