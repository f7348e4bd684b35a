"""The autoregressive model as a `WorldBackend`: `get_backend("toyworld")` loads the shipped checkpoint.

Outputs hold `num_output_frames` frames: the conditioning frames as given (image2world: 1, video2world: up
to `context_frames - 1`), then the predicted ones; text2world predicts every frame from the prompt.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from theworld.world.autoregressive.model import AutoregressiveWorldModel
from theworld.world.backends import INFERENCE_TYPES, ProgressFn, WorldRequest

__all__ = ["SHIPPED", "AutoregressiveBackend", "load_backend", "shipped_checkpoint"]

SHIPPED = {"toyworld": "toyworld-ar"}  # backend name -> folder under theworld/data


def shipped_checkpoint(name: str = "toyworld") -> Path:
    return Path(str(resources.files("theworld") / "data" / SHIPPED[name]))


def _resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames])


class AutoregressiveBackend:
    """Cosmos-Predict1-style autoregressive world generation over discrete video tokens."""

    inference_types = INFERENCE_TYPES
    default_fps = 8
    default_num_output_frames = 8

    # Predict1's defaults, top_p 0.8 at temperature 1.0: on held-out ToyWorld clips the shipped model's sampled
    # trajectories beat copying the last frame (`theworld.evaluation.world_physics`). --temperature 0 is greedy.
    def __init__(
        self,
        model: AutoregressiveWorldModel,
        name: str = "toyworld",
        top_p: float | None = 0.8,
        temperature: float = 1.0,
    ):
        self.model, self.name = model, name
        self.top_p, self.temperature = top_p, temperature
        size = model.layout.frame_size
        self.default_resolution = (size, size)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def conditioning(self, request: WorldRequest) -> np.ndarray | None:
        """The frames the model continues: none, the last input frame, or the last few input frames."""
        if request.inference_type == "text2world":
            return None
        if request.input_frames is None or len(request.input_frames) == 0:
            raise ValueError(f"{request.inference_type} needs input frames; set input_path in the spec")
        frames = request.input_frames
        if request.inference_type == "image2world":
            frames = frames[-1:]
        elif request.num_input_frames:
            frames = frames[-request.num_input_frames :]
        return frames[-(self.model.layout.context_frames - 1) :]

    def generate(self, request: WorldRequest, progress: ProgressFn | None = None) -> np.ndarray:
        """Predict the frames after the conditioning; returns (T, H, W, 3) uint8 at the request's size."""
        if request.inference_type not in self.inference_types:
            raise ValueError(f"unknown inference_type {request.inference_type!r}; use one of {self.inference_types}")
        size = self.model.layout.frame_size
        given = self.conditioning(request)
        given = None if given is None else _resize(given, size, size)
        new = request.num_output_frames - (0 if given is None else len(given))
        if new < 1:
            raise ValueError(
                f"num_output_frames={request.num_output_frames} leaves no frame to predict after "
                f"{len(given)} conditioning frame(s); ask for more output frames"
            )
        predicted = self.model.predict(
            given,
            new,
            prompt=request.prompt,
            seed=request.seed,
            top_p=self.top_p if request.top_p is None else request.top_p,
            temperature=self._temperature(request),
            progress=progress,
            guidance=request.guidance,
        )
        video = predicted if given is None else np.concatenate([given, predicted])
        return _resize(video, request.height, request.width)

    def _temperature(self, request: WorldRequest) -> float:
        """The request's temperature; asking for a top_p alone means sampling, at temperature 1."""
        if request.temperature is not None:
            return request.temperature
        return 1.0 if request.top_p is not None and self.temperature == 0 else self.temperature


def load_backend(name_or_path: str = "toyworld", device: str | None = None, **opts) -> AutoregressiveBackend:
    """The factory `get_backend` calls: a shipped name or a checkpoint folder with `world_model.json`.

    The model decodes with its diffusion decoder when it has one (`diffusion_decoder=True`, the default), or with the
    tokenizer's own decoder (`diffusion_decoder=False`: Predict1's --disable_diffusion_decoder).
    Of the `offload` options only the diffusion decoder's applies (it stays on the CPU between uses); the runner
    applies the `guardrail`, and the rest of the model (a few MB) stays on one device.
    """
    opts.pop("guardrail", None)
    offload = opts.pop("offload", None)
    use_decoder = opts.pop("diffusion_decoder", True)
    folder = shipped_checkpoint(name_or_path) if name_or_path in SHIPPED else Path(name_or_path).expanduser()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    name = name_or_path if name_or_path in SHIPPED else folder.name
    model = AutoregressiveWorldModel.from_pretrained(folder, device)
    model.use_diffusion_decoder = use_decoder and model.diffusion_decoder is not None
    model.offload_diffusion_decoder = bool(offload and offload.diffusion_decoder)
    return AutoregressiveBackend(model, name, **opts)
