"""The autoregressive world model's text-to-frame model (text2world's first frame) as a stage of `theworld train`.

    OMP_NUM_THREADS=1 theworld train world-ar-text --output-dir DIR

DIR holds an autoregressive world model with its diffusion decoder (`theworld train world-ar`, then
`world-ar-decoder`). The stage pairs ToyWorld training frames with their captions (`theworld.toyworld.caption`: each
shape's size, colour, kind and motion, left to right), encodes the frames with the diffusion decoder's VAE, and
trains the text encoder and denoiser together by flow matching (`optimize`, as every stage). A share of the captions
is dropped (`prompt_dropout`) so that the same model also draws unconditionally, which classifier-free guidance needs.
Seeded end to end; the full settings produce the shipped `text_to_frame/`.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from theworld.media import to_model_range
from theworld.toyworld import caption, simulate, split_seeds
from theworld.training.loop import optimize, warmup_cosine
from theworld.training.stage import StageContext, report_figures
from theworld.training.world_ar import require_autoregressive_model
from theworld.training.world_ar_decoder import flow_matching_batch, shape_pixels
from theworld.world.autoregressive.model import AutoregressiveWorldModel
from theworld.world.autoregressive.text_to_frame import TextToFrame, text_denoiser_for, text_encoder_for

__all__ = ["TEXT_TO_FRAME_SETTINGS", "TextToFrameSettings", "train_text_to_frame", "world_ar_text_stage"]


@dataclass(frozen=True)
class TextToFrameSettings:
    # Many scenes of few frames each: what a caption binds (each shape's colour to its kind) differs between scenes,
    # not between a clip's frames
    num_clips: int = 7200
    clip_frames: int = 2
    # Long enough that how well the drawn frame follows its prompt does not hang on the training seed
    steps: int = 8000
    batch: int = 32
    lr: float = 1e-3
    prompt_dropout: float = 0.1  # share of training frames seen without their caption
    num_steps: int = 20  # denoising steps at inference
    text_width: int = 64
    text_layers: int = 2
    # The denoiser attends to one token per named object (each pooled from its own phrase), not to one per word:
    # per word, it draws the named colours but swaps their kinds when a prompt names several shapes
    one_token_per_object: bool = True
    attention_layers: int = 1  # transformer layers at each of the denoiser's attention levels
    full_grid_cross_attention: bool = False
    # Extra loss weight of the latent cells a shape covers: a shape's kind is a few cells of a mostly empty frame
    foreground_weight: float = 0.0
    seed: int = 0


TEXT_TO_FRAME_SETTINGS = {
    "full": TextToFrameSettings(),
    "smoke": TextToFrameSettings(num_clips=2, clip_frames=2, steps=2, batch=2, num_steps=2),
}


def train_text_to_frame(folder: str | Path, settings: TextToFrameSettings = TEXT_TO_FRAME_SETTINGS["full"]) -> dict:
    """Train the text-to-frame model of the autoregressive model in `folder` and save it there; return figures."""
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    model = AutoregressiveWorldModel.from_pretrained(folder)
    decoder = model.diffusion_decoder
    words = model.layout.words
    latent_size = decoder.unet.config.sample_size
    unet = text_denoiser_for(
        decoder.vae.config.z_dim,
        latent_size,
        settings.text_width,
        settings.attention_layers,
        settings.full_grid_cross_attention,
    )
    text_encoder = text_encoder_for(
        len(words), settings.text_width, settings.text_layers, settings.one_token_per_object
    )
    drawer = TextToFrame(unet, text_encoder, FlowMatchEulerDiscreteScheduler(), words, settings.num_steps)
    clips = [simulate(seed, settings.clip_frames) for seed in split_seeds("train", settings.num_clips)]
    frames = to_model_range(np.concatenate([c.frames for c in clips]))
    captions = [caption(c, t) for c in clips for t in range(settings.clip_frames)]
    targets = torch.cat([decoder.encode_frames(chunk) for chunk in frames.split(256)])
    # a latent cell is a shape's when any of the pixels it covers is
    shape_cells = torch.nn.functional.adaptive_max_pool2d(shape_pixels(frames), latent_size)
    weights = 1 + settings.foreground_weight * shape_cells
    generator = torch.Generator().manual_seed(settings.seed)
    unet.train()
    text_encoder.train()

    def step_loss() -> tuple[torch.Tensor, float]:
        pick = torch.randint(len(targets), (settings.batch,), generator=generator)
        dropped = (torch.rand(settings.batch, generator=generator) < settings.prompt_dropout).tolist()
        prompts = [None if d else captions[i] for i, d in zip(pick.tolist(), dropped, strict=True)]
        text, mask = drawer.encode_prompts(prompts)
        noisy, sigma, target = flow_matching_batch(targets[pick], generator)
        loss = (weights[pick] * (drawer.velocity(noisy, sigma, text, mask) - target).pow(2)).mean()
        return loss, loss.item()

    parameters = [*unet.parameters(), *text_encoder.parameters()]
    schedule = warmup_cosine(settings.steps, min(100, settings.steps // 10))
    loss = optimize(parameters, settings.steps, settings.lr, step_loss, "text to frame", schedule=schedule)
    unet.eval()
    text_encoder.eval()
    drawer.save_pretrained(Path(folder))
    seconds = round(time.perf_counter() - started, 1)
    return {"text_to_frame_loss": loss, "frames": len(targets), "text_to_frame_seconds": seconds}


def world_ar_text_stage(context: StageContext) -> dict:
    """The "world-ar-text" stage: `train_text_to_frame` into the autoregressive model in the stage's folder."""
    require_autoregressive_model(context.output_dir)
    if not (context.output_dir / "diffusion_decoder").is_dir():
        raise FileNotFoundError(
            f"{context.output_dir} has no diffusion decoder, whose VAE paints the text-to-frame model's latents; run "
            f"`theworld train world-ar-decoder --output-dir {context.output_dir}` first"
        )
    return report_figures(context.stage, train_text_to_frame(context.output_dir, context.settings))
