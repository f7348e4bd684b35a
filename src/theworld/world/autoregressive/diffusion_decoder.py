"""Predict1's diffusion decoder, small: the autoregressive model's discrete tokens -> a continuous VAE latent -> pixels.

Cosmos-Predict1 decodes its DV8x16x16 tokens with a diffusion model into the CV8x8x8 tokenizer's continuous
latent, which its decoder turns into sharper frames than the discrete tokenizer's own decoder. Here the 8x8 FSQ
codes of a 64x64 frame (8x downsampling) condition a diffusers `UNet2DModel` that denoises the 8x16x16 latent of
ToyWorld's VAE (`AutoencoderKLWan`, 4x downsampling, the one TheWorld's world encoder uses), by flow matching
with diffusers' `FlowMatchEulerDiscreteScheduler`; the VAE's decoder then paints the frame.

The condition is the codes' FSQ values (a bijection with the codes), upsampled to the latent grid and stacked with
the noisy latent as input channels. Saved as `diffusion_decoder/` in the model folder: `unet/`, `scheduler/` and
`vae/` (diffusers' formats, safetensors).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, UNet2DModel

from theworld.world.autoregressive.tokenizer import FSQ

__all__ = ["DiffusionDecoder", "denoiser_for"]

FOLDER = "diffusion_decoder"


def denoiser_for(latent_channels: int, condition_channels: int, latent_size: int) -> UNet2DModel:
    """A small UNet over the latent grid: the noisy latent and the condition in, the flow velocity out."""
    return UNet2DModel(
        sample_size=latent_size,
        in_channels=latent_channels + condition_channels,
        out_channels=latent_channels,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )


class DiffusionDecoder:
    """codes (T, h, w) -> frames (T, 3, H, W) in [-1, 1], through the denoised VAE latent."""

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: FlowMatchEulerDiscreteScheduler,
        vae: AutoencoderKLWan,
        fsq: FSQ,
        num_steps: int = 8,
    ):
        self.unet, self.scheduler, self.vae, self.fsq = unet.eval(), scheduler, vae.eval(), fsq
        self.num_steps = num_steps
        channels = vae.config.z_dim
        self._mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32).view(1, channels, 1, 1)
        self._std = torch.tensor(vae.config.latents_std, dtype=torch.float32).view(1, channels, 1, 1)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def to(self, device: str | torch.device) -> DiffusionDecoder:
        self.unet.to(device)
        self.vae.to(device)
        self.fsq.to(device)
        return self

    # Latents are normalised per channel (the VAE's `latents_mean`/`latents_std`), as the world encoder's are.
    def normalise(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self._mean.to(latents)) / self._std.to(latents)

    def denormalise(self, latents: torch.Tensor) -> torch.Tensor:
        return latents * self._std.to(latents) + self._mean.to(latents)

    def condition(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, h, w) codes -> (N, levels, H', W') FSQ values on the latent grid."""
        size = self.unet.config.sample_size
        return F.interpolate(self.fsq.quantized_from_codes(codes.to(self.device)), size=(size, size), mode="nearest")

    @torch.no_grad()
    def latents(self, codes: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """(N, h, w) codes -> (N, C, H', W') normalised latents, denoised from seeded noise in `num_steps` steps."""
        condition = self.condition(codes)
        generator = torch.Generator().manual_seed(seed)
        shape = (len(codes), self.unet.config.out_channels, *condition.shape[-2:])
        sample = torch.randn(shape, generator=generator).to(self.device)
        self.scheduler.set_timesteps(self.num_steps, device=self.device)
        for t in self.scheduler.timesteps:
            velocity = self.unet(torch.cat([sample, condition], 1), t).sample
            sample = self.scheduler.step(velocity, t, sample).prev_sample
        return sample

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (N, C, H', W') -> frames (N, 3, H, W) in [-1, 1] (each a one-frame video)."""
        return self.vae.decode(self.denormalise(latents).unsqueeze(2)).sample[:, :, 0].clamp(-1, 1)

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (N, 3, H, W) in [-1, 1] -> normalised latents (the posterior's mode): the training targets."""
        return self.normalise(self.vae.encode(frames.to(self.device).unsqueeze(2)).latent_dist.mode()[:, :, 0])

    def decode(self, codes: torch.Tensor, seed: int = 0) -> torch.Tensor:
        return self.decode_latents(self.latents(codes, seed))

    def save_pretrained(self, folder: Path) -> None:
        folder = Path(folder) / FOLDER
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(folder / "scheduler")
        self.vae.save_pretrained(folder / "vae", safe_serialization=True)

    @classmethod
    def from_pretrained(cls, folder: Path, fsq: FSQ, device: str | torch.device = "cpu") -> DiffusionDecoder | None:
        """The decoder saved in a model folder, or None when the folder has none."""
        folder = Path(folder) / FOLDER
        if not folder.is_dir():
            return None
        unet = UNet2DModel.from_pretrained(folder / "unet").to(device)
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(folder / "scheduler")
        vae = AutoencoderKLWan.from_pretrained(folder / "vae").to(device)
        return cls(unet, scheduler, vae, fsq)
