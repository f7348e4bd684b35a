"""A thin `WorldBackend` over diffusers' Cosmos pipelines (real checkpoints by hub id or folder).

- Cosmos-Predict2.5 (`Cosmos2_5_PredictBasePipeline`): text2world, image2world, video2world.
- Cosmos-Predict2 (`Cosmos2VideoToWorldPipeline`): image2world, video2world.

Image2world on Predict2.5 goes through a one-frame `video` with `num_latent_conditional_frames=1`, which
avoids the pipeline's torchvision-only `image=` path and gives the same result.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from theworld.world.backends import OffloadOptions, ProgressFn, WorldRequest
from theworld.world.guardrail import Guardrail, load_guardrail

__all__ = ["PIPELINES", "CosmosDiffusionBackend", "is_diffusers_pipeline"]

logger = logging.getLogger(__name__)

# pipeline class name -> (inference types, default fps, default (H, W), default frames)
PIPELINES = {
    "Cosmos2_5_PredictBasePipeline": (("text2world", "image2world", "video2world"), 16, (704, 1280), 93),
    "Cosmos2VideoToWorldPipeline": (("image2world", "video2world"), 16, (704, 1280), 93),
}


_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(@[\w./-]+)?$")


def is_diffusers_pipeline(name_or_path: str) -> bool:
    """A folder with a diffusers `model_index.json`, or something shaped like a hub id ("org/name@revision")."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return (path / "model_index.json").is_file()
    return bool(_HUB_ID.match(name_or_path))


def _split_revision(model: str) -> tuple[str, str | None]:
    """ "org/name@revision" -> ("org/name", "revision"); local folders never carry a revision."""
    if Path(model).expanduser().exists() or "@" not in model:
        return model, None
    model, _, revision = model.partition("@")
    return model, revision


def _pipeline_class_name(model: str, revision: str | None) -> str:
    from diffusers import DiffusionPipeline

    local = Path(model).expanduser() / "model_index.json"
    config = (
        json.loads(local.read_text()) if local.is_file() else DiffusionPipeline.load_config(model, revision=revision)
    )
    name = config.get("_class_name")
    if name not in PIPELINES:
        raise ValueError(f"{model!r} is a {name} pipeline; theworld world supports {sorted(PIPELINES)}")
    return name


def _offloadable(pipe, offload: OffloadOptions) -> list[tuple[bool, torch.nn.Module]]:
    """(offloaded?, part) for the parts the flags name, in the order a call runs them."""
    return [
        (offload.text_encoder, pipe.text_encoder),
        (offload.tokenizer, pipe.vae.encoder),
        (offload.model, pipe.transformer),
        (offload.decoder, pipe.vae.decoder),
    ]


def _apply_offload(pipe, offload: OffloadOptions, device: torch.device):
    """Keep the chosen parts on the CPU and move each to `device` only while it runs (accelerate hooks).

    Each part, offloaded or not, sends the offloaded parts that ran before it back to the CPU when it starts,
    even when a call skips a stage (text2world encodes no video): an offloaded part is on `device` from its own
    stage until the next part runs, or until the call ends (the returned hook, which `generate` offloads). On a
    CPU-only machine the same hooks run with cpu as the execution device.
    """
    from accelerate.hooks import CpuOffload, ModelHook, UserCpuOffloadHook, add_hook_to_module

    class MoveOnly(CpuOffload):
        """accelerate's `CpuOffload` without its copy of the arguments: the pipeline already puts them on the
        device, and Wan's VAE encoder and decoder keep their causal cache in lists passed as arguments, whose
        writes a copy would lose."""

        def pre_forward(self, module, *args, **kwargs):
            module.to(self.execution_device)
            return args, kwargs

    vae = pipe.vae
    parts = _offloadable(pipe, offload)
    if offload.tokenizer or offload.decoder:
        # diffusers finds the execution device from a component's top-level `_hf_hook` and then its
        # submodules' hooks; this inert hook makes it look inside the VAE.
        add_hook_to_module(vae, ModelHook())
    hooks = []
    for wanted, module in parts:
        for earlier in hooks:
            module.register_forward_pre_hook(lambda *_, hook=earlier: hook.offload())
        if wanted:
            hook = MoveOnly(device)
            add_hook_to_module(module, hook, append=True)
            hooks.append(UserCpuOffloadHook(module, hook))
    return hooks[-1] if hooks else None


class CosmosDiffusionBackend:
    """`WorldBackend` around one loaded diffusers Cosmos pipeline."""

    def __init__(self, pipe, name: str, max_sequence_length: int = 512, last_offload_hook=None) -> None:
        class_name = type(pipe).__name__
        self.pipe = pipe
        self.device = str(pipe._execution_device)
        self.name = name
        self.family = class_name
        self.inference_types, self.default_fps, self.default_resolution, self.default_num_output_frames = PIPELINES[
            class_name
        ]
        self.max_sequence_length = max_sequence_length
        self.last_offload_hook = last_offload_hook  # offloaded after each call; the chain handles the rest

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        guardrail: Guardrail | None = None,
        offload: OffloadOptions | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        max_sequence_length: int = 512,
        **_ignored,
    ) -> CosmosDiffusionBackend:
        """Load a Cosmos pipeline (folder or hub id "id@revision") with `guardrail` as safety checker."""
        import diffusers

        offload = offload or OffloadOptions()
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        repo, revision = _split_revision(model)
        class_name = _pipeline_class_name(repo, revision)
        pipe = getattr(diffusers, class_name).from_pretrained(
            repo, revision=revision, dtype=dtype, safety_checker=guardrail or load_guardrail(offload=offload.guardrail)
        )
        return cls.from_pipeline(pipe, f"diffusers:{model}", offload, device, max_sequence_length)

    @classmethod
    def from_pipeline(
        cls, pipe, name: str, offload: OffloadOptions, device: torch.device, max_sequence_length: int = 512
    ) -> CosmosDiffusionBackend:
        """Wrap a loaded pipeline: the parts `offload` names stay on the CPU (they reach `device` only while they
        run, so they never have to fit on it together), the others move to `device` now."""
        vae = pipe.vae
        offloaded = {id(module) for wanted, module in _offloadable(pipe, offload) if wanted}
        for module in (pipe.text_encoder, pipe.transformer, *vae.children()):
            if id(module) not in offloaded:
                module.to(device)
        pipe.safety_checker.to(device)  # the guardrail's own `offload` keeps its models off it between checks
        last_hook = None
        if any((offload.model, offload.text_encoder, offload.tokenizer, offload.decoder)):
            last_hook = _apply_offload(pipe, offload, device)
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, name, max_sequence_length, last_hook)

    def generate(self, request: WorldRequest, progress: ProgressFn | None = None) -> np.ndarray:
        """Run the pipeline for one request; returns (T, H, W, 3) uint8 frames."""
        if request.inference_type not in self.inference_types:
            raise ValueError(
                f"{self.family} cannot do {request.inference_type}; it supports {list(self.inference_types)}"
            )
        if (request.num_output_frames - 1) % 4:
            raise ValueError(f"num_output_frames={request.num_output_frames} does not fit the VAE; use 4k+1 (9, 93)")
        steps = request.num_steps or 35
        kwargs = dict(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            height=request.height,
            width=request.width,
            num_frames=request.num_output_frames,
            num_inference_steps=steps,
            generator=torch.Generator("cpu").manual_seed(request.seed),
            max_sequence_length=self.max_sequence_length,
            output_type="np",
        )
        if request.guidance is not None:
            kwargs["guidance_scale"] = request.guidance
        if self.family == "Cosmos2VideoToWorldPipeline":
            kwargs["fps"] = request.fps
        kwargs.update(self._conditioning(request))
        if progress is not None:

            def on_step(pipe, i, t, tensors):
                progress(i + 1, steps)
                return tensors

            kwargs["callback_on_step_end"] = on_step
        try:
            video = self.pipe(**kwargs).frames[0]
        finally:
            if self.last_offload_hook is not None:
                self.last_offload_hook.offload()
        return (np.clip(video, 0.0, 1.0) * 255).round().astype(np.uint8)

    def _conditioning(self, request: WorldRequest) -> dict:
        if request.inference_type == "text2world":
            return {}
        frames = request.input_frames
        if frames is None:
            raise ValueError(f"{request.inference_type} needs input frames; set input_path")
        if request.inference_type == "image2world":
            frames = frames[-1:]
        elif request.num_input_frames:
            frames = frames[-request.num_input_frames :]
        images = [Image.fromarray(f) for f in frames]
        if self.family == "Cosmos2VideoToWorldPipeline":
            return {"image": images[0]} if len(images) == 1 else {"video": images}
        # Predict2.5 conditions on 1 latent frame (1 pixel frame) or 2 (the last 5 pixel frames).
        latent_frames = 2 if len(images) >= 5 else 1
        return {
            "video": images[-(4 * (latent_frames - 1) + 1) :],
            "num_latent_conditional_frames": latent_frames,
        }
