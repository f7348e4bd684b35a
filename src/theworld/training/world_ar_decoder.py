"""The autoregressive world model's diffusion decoder as a stage of `theworld train`.

    OMP_NUM_THREADS=1 theworld train world-ar-decoder --output-dir DIR

DIR holds an autoregressive world model (`theworld train world-ar` wrote it). The stage pairs ToyWorld training
frames' FSQ codes (its tokenizer) with their latents under ToyWorld's VAE (TheWorld-tiny's world encoder, copied
into the decoder's folder), trains the denoiser by flow matching (`optimize`, as every stage), then sharpens the
copied VAE's decoder on the same frames (`sharpen_vae_decoder`: its encoder, and so every latent, stays as it was),
and saves `diffusion_decoder/` into DIR. Seeded end to end; the full settings produce the shipped decoder.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler

from theworld.media import to_model_range
from theworld.toyworld import floor_y, simulate, split_seeds
from theworld.toyworld.render import BACKGROUND
from theworld.training.loop import optimize, warmup_cosine
from theworld.training.stage import StageContext, report_figures
from theworld.training.world_ar import require_autoregressive_model
from theworld.world.autoregressive.diffusion_decoder import DiffusionDecoder, denoiser_for
from theworld.world.autoregressive.model import AutoregressiveWorldModel

__all__ = [
    "DECODER_SETTINGS",
    "DecoderSettings",
    "flow_matching_batch",
    "shape_pixels",
    "sharpen_vae_decoder",
    "toyworld_vae",
    "train_decoder",
    "world_ar_decoder_stage",
]


@dataclass(frozen=True)
class DecoderSettings:
    num_clips: int = 600
    clip_frames: int = 12
    steps: int = 1500
    batch: int = 32
    lr: float = 1e-3
    num_steps: int = 8  # denoising steps at inference
    vae_steps: int = 3000  # updates of the VAE decoder's sharpening (0: keep TheWorld-tiny's decoder as it is)
    vae_foreground_weight: float = 10.0  # extra weight of shape pixels (not background or floor) in that loss
    seed: int = 0


DECODER_SETTINGS = {
    "full": DecoderSettings(),
    "smoke": DecoderSettings(num_clips=2, clip_frames=2, steps=2, batch=2, num_steps=2, vae_steps=2),
}


def toyworld_vae(model: str | Path | None = None) -> AutoencoderKLWan:
    """ToyWorld's VAE: TheWorld-tiny's world encoder (or `model`'s), with its latent statistics in its config."""
    from theworld.modeling import TheWorld
    from theworld.modeling.names import DEFAULT_MODEL

    world = TheWorld.from_pretrained(str(model or DEFAULT_MODEL))
    encoder = next(m for m in world.modules() if type(m).__name__ == "WorldEncoder")
    config = {**encoder.vae.config, "latents_mean": encoder.latents_mean.tolist()}
    config["latents_std"] = encoder.latents_std.tolist()
    vae = AutoencoderKLWan.from_config(config)
    vae.load_state_dict(encoder.vae.state_dict())
    return vae.eval()


def flow_matching_batch(
    clean: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A flow-matching training batch on the path `FlowMatchEulerDiscreteScheduler` samples: noise levels sigma (N,)
    uniform in [0, 1], x_sigma = (1 - sigma) x0 + sigma noise, and the velocity to learn, noise - x0. Returns
    (x_sigma, sigma, velocity); the model's timestep is 1000 sigma."""
    noise = torch.randn(clean.shape, generator=generator)
    sigma = torch.rand(len(clean), generator=generator)
    level = sigma.view(-1, *[1] * (clean.dim() - 1))
    return (1 - level) * clean + level * noise, sigma, noise - clean


def train_decoder(folder: str | Path, settings: DecoderSettings = DECODER_SETTINGS["full"]) -> dict:
    """Train the diffusion decoder of the autoregressive model in `folder` and save it there; return figures."""
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    model = AutoregressiveWorldModel.from_pretrained(folder)
    vae = toyworld_vae()
    latent_size = model.layout.frame_size // 2 ** (len(vae.config.dim_mult) - 1)
    unet = denoiser_for(vae.config.z_dim, len(model.tokenizer.config.levels), latent_size)
    decoder = DiffusionDecoder(unet, FlowMatchEulerDiscreteScheduler(), vae, model.tokenizer.fsq, settings.num_steps)
    clips = [simulate(seed, settings.clip_frames) for seed in split_seeds("train", settings.num_clips)]
    frames = to_model_range(np.concatenate([c.frames for c in clips]))
    codes = torch.cat([model.tokenizer.encode(chunk) for chunk in frames.split(256)])
    targets = torch.cat([decoder.encode_frames(chunk) for chunk in frames.split(256)])
    conditions = torch.cat([decoder.condition(chunk) for chunk in codes.split(1024)])
    generator = torch.Generator().manual_seed(settings.seed)
    unet.train()

    def step_loss() -> tuple[torch.Tensor, float]:
        pick = torch.randint(len(targets), (settings.batch,), generator=generator)
        noisy, sigma, target = flow_matching_batch(targets[pick], generator)
        velocity = unet(torch.cat([noisy, conditions[pick]], 1), sigma * 1000).sample
        loss = (velocity - target).pow(2).mean()
        return loss, loss.item()

    loss = optimize(
        unet.parameters(), settings.steps, settings.lr, step_loss, "diffusion decoder",
        schedule=warmup_cosine(settings.steps, min(100, settings.steps // 10)),
    )  # fmt: skip
    unet.eval()
    vae_loss = sharpen_vae_decoder(decoder, frames, targets, settings) if settings.vae_steps else None
    decoder.save_pretrained(Path(folder))
    return {
        "decoder_loss": loss,
        **({"vae_decoder_loss": vae_loss} if vae_loss is not None else {}),
        "frames": len(targets),
        "decoder_seconds": round(time.perf_counter() - started, 1),
    }


def shape_pixels(frames: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) 1 where ToyWorld frames (N, 3, H, W) in [-1, 1] show a shape (or its trail), else 0: neither the
    background nor the floor and the rows below it."""
    background = torch.tensor(BACKGROUND / 127.5 - 1, dtype=torch.float32).view(1, 3, 1, 1)
    shapes = ((frames - background).abs().amax(1, keepdim=True) > 0.05).float()
    shapes[..., int(floor_y(frames.shape[-2])) :, :] = 0.0
    return shapes


def sharpen_vae_decoder(
    decoder: DiffusionDecoder, frames: torch.Tensor, latents: torch.Tensor, settings: DecoderSettings
) -> float:
    """Train the VAE's decoder (and post-quantisation conv) to paint `frames` (N, 3, H, W) in [-1, 1] from their
    normalised `latents`, by L1 + L2 with shape pixels weighted up: TheWorld-tiny's VAE was trained for its latents
    and blurs edges, which loses shapes' kinds. The encoder is untouched, so the denoiser's targets still hold."""
    vae = decoder.vae
    trained = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    for parameter in vae.parameters():
        parameter.requires_grad_(False)
    for parameter in trained:
        parameter.requires_grad_(True)
    shapes = shape_pixels(frames)
    generator = torch.Generator().manual_seed(settings.seed + 1)
    vae.train()

    def step_loss() -> tuple[torch.Tensor, float]:
        pick = torch.randint(len(latents), (settings.batch,), generator=generator)
        painted = vae.decode(decoder.denormalise(latents[pick]).unsqueeze(2)).sample[:, :, 0]
        error, weight = painted - frames[pick], 1 + settings.vae_foreground_weight * shapes[pick]
        loss = (weight * (error.abs() + error.pow(2))).mean()
        return loss, loss.item()

    schedule = warmup_cosine(settings.vae_steps, min(50, settings.vae_steps // 10))
    loss = optimize(trained, settings.vae_steps, settings.lr, step_loss, "VAE decoder", schedule=schedule)
    vae.eval().requires_grad_(False)
    return loss


def world_ar_decoder_stage(context: StageContext) -> dict:
    """The "world-ar-decoder" stage: `train_decoder` into the autoregressive model in the stage's folder."""
    require_autoregressive_model(context.output_dir)
    return report_figures(context.stage, train_decoder(context.output_dir, context.settings))
