"""The `WorldBackend` protocol, the request it takes, and the registry `get_backend` looks names up in.

A backend turns one `WorldRequest` into frames `(T, H, W, 3)` uint8. Register a new one with
`register_backend("name", "package.module:Factory")`; the factory is called as `Factory(model, **opts)`
and imported only when that name is asked for. `register_model_format(accepts, factory)` does the same for
the model folders or hub ids `accepts(name_or_path)` says that factory loads. The built-in backends are
registered in `theworld.world`.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "DEFAULT_BACKEND",
    "INFERENCE_TYPES",
    "OffloadOptions",
    "ProgressFn",
    "WorldBackend",
    "WorldRequest",
    "get_backend",
    "register_backend",
    "register_model_format",
]

INFERENCE_TYPES = ("text2world", "image2world", "video2world")
DEFAULT_BACKEND = "toyworld"

ProgressFn = Callable[[int, int], None]
"""Called as `progress(steps_done, steps_total)` while a sample is generated."""


@dataclass(frozen=True)
class WorldRequest:
    """One sample, fully resolved: every default filled in, input already decoded."""

    inference_type: str
    prompt: str
    num_output_frames: int
    height: int
    width: int
    fps: int
    seed: int
    negative_prompt: str | None = None
    input_frames: np.ndarray | None = None  # (T, H, W, 3) uint8, T == 1 for image2world
    num_input_frames: int | None = None
    guidance: float | None = None
    num_steps: int | None = None
    top_p: float | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class OffloadOptions:
    """Which parts live on the CPU between uses (Cosmos' `--offload_*` flags)."""

    model: bool = False
    text_encoder: bool = False
    tokenizer: bool = False  # the video tokenizer's encoder side (VAE encoder)
    decoder: bool = False  # the video tokenizer's decoder side (VAE decoder)
    guardrail: bool = False
    diffusion_decoder: bool = False  # Predict1's diffusion decoder (tokens -> continuous latents)


@runtime_checkable
class WorldBackend(Protocol):
    """What `theworld world` needs from a world model."""

    name: str
    inference_types: tuple[str, ...]
    default_fps: int
    default_resolution: tuple[int, int]  # (height, width)
    default_num_output_frames: int

    def generate(self, request: WorldRequest, progress: ProgressFn | None = None) -> np.ndarray:
        """Return the generated video as (T, H, W, 3) uint8 frames."""
        ...


Factory = Callable[..., WorldBackend] | str
"""A callable, or "module:attr" (attr may be dotted) imported when first needed."""


@dataclass
class _Registry:
    factories: dict[str, Factory] = field(default_factory=dict)
    formats: list[tuple[Callable[[str], bool], Factory]] = field(default_factory=list)


_REGISTRY = _Registry()


def register_backend(name: str, factory: Factory) -> None:
    """Make `get_backend(name)` build `factory(name, **opts)`; a "module:attr" string is imported lazily."""
    _REGISTRY.factories[name] = factory


def register_model_format(accepts: Callable[[str], bool], factory: Factory) -> None:
    """Make `get_backend(name_or_path)` build `factory(name_or_path, **opts)` for every model folder or hub id
    `accepts` says is this format; formats are tried in the order they were registered."""
    _REGISTRY.formats.append((accepts, factory))


def _resolve(factory: Factory) -> Callable[..., WorldBackend]:
    if callable(factory):
        return factory
    module, _, attr = factory.partition(":")
    return functools.reduce(getattr, attr.split("."), importlib.import_module(module))


def get_backend(name_or_path: str = DEFAULT_BACKEND, **opts) -> WorldBackend:
    """A registered backend by name, else the first registered format that accepts the folder or hub id."""
    if name_or_path in _REGISTRY.factories:
        return _resolve(_REGISTRY.factories[name_or_path])(name_or_path, **opts)
    for accepts, factory in _REGISTRY.formats:
        if accepts(name_or_path):
            return _resolve(factory)(name_or_path, **opts)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir())[:8]
        raise ValueError(
            f"model folder {str(path)!r} has no model_index.json (found {json.dumps(found)}); "
            "point --model at a diffusers pipeline folder"
        )
    known = ", ".join(sorted(_REGISTRY.factories)) or "none registered"
    raise ValueError(
        f"unknown model {name_or_path!r}: not a registered backend ({known}), a diffusers folder, "
        "or a hub id; pass one of those to --model"
    )
