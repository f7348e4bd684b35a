"""The world encoder: a Cosmos-style video VAE from diffusers that turns frames into per-frame latents."""

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLCosmos, AutoencoderKLWan
from torch import nn

__all__ = ["VAE_CLASSES", "WorldEncoder"]

VAE_CLASSES = {"wan": AutoencoderKLWan, "cosmos": AutoencoderKLCosmos}


class WorldEncoder(nn.Module):
    """Encodes frames in [-1, 1] into normalised latents z (one latent frame per input frame) and back.

    Each frame is encoded on its own, as a one-frame video: the causal VAEs map a first frame to exactly one
    latent frame, so every world step gets its own C x h x w latent whatever the clip length.
    """

    def __init__(self, encoder_type: str, vae_config: dict, image_size: int):
        super().__init__()
        self.vae = VAE_CLASSES[encoder_type].from_config(vae_config)
        self.image_size = image_size
        mean, std = vae_config.get("latents_mean"), vae_config.get("latents_std")
        channels = self.latent_channels
        # Saved with the weights, so a loaded model never depends on re-deriving them.
        self.register_buffer("latents_mean", _channel_stat(mean, channels, 0.0), persistent=True)
        self.register_buffer("latents_std", _channel_stat(std, channels, 1.0), persistent=True)

    def reset_vae_parameters(self) -> None:
        """Give the VAE the initialisation it has when diffusers builds it (each layer's own `reset_parameters`),
        instead of the language model's small normal one that `post_init` applies to every module, from which the
        VAE trains to blurrier frames that keep less of the shapes' motion trails."""
        for module in self.vae.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def restore_derived_buffers(self) -> None:
        """Recompute the VAE's non-persistent buffers (Cosmos' Haar wavelet filters): checkpoints do not hold
        them, and transformers' meta-device loading leaves them uninitialised."""
        saved = set(self.vae.state_dict())
        derived = [name for name, _ in self.vae.named_buffers() if name not in saved]
        if not derived:
            return
        fresh = dict(type(self.vae).from_config(self.vae.config).named_buffers())
        with torch.no_grad():
            for name in derived:
                buffer = self.vae.get_buffer(name)
                buffer.copy_(fresh[name].to(device=buffer.device, dtype=buffer.dtype))

    @property
    def latent_channels(self) -> int:
        config = self.vae.config
        return config.get("z_dim") or config.get("latent_channels")

    @property
    def spatial_factor(self) -> int:
        config = self.vae.config
        if "dim_mult" in config:
            return 2 ** (len(config["dim_mult"]) - 1)
        return config["spatial_compression_ratio"]

    @property
    def latent_size(self) -> int:
        return self.image_size // self.spatial_factor

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [-1, 1] -> normalised latents (B, T, C, h, w), the posterior mean."""
        batch, steps = frames.shape[:2]
        flat = frames.flatten(0, 1).to(self.vae.dtype)
        if flat.shape[-1] != self.image_size or flat.shape[-2] != self.image_size:
            flat = F.interpolate(flat, size=(self.image_size, self.image_size), mode="area")
        latents = self.vae.encode(flat.unsqueeze(2)).latent_dist.mode()[:, :, 0]  # Cosmos: deterministic
        latents = (latents - self.latents_mean.view(1, -1, 1, 1)) / self.latents_std.view(1, -1, 1, 1)
        return latents.to(flat.dtype).unflatten(0, (batch, steps))

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [-1, 1], one video of T = 1 + factor x m frames -> its normalised latents
        (B, 1 + m, C, h, w), the posterior mean: the first frame alone, then each latent frame packing the VAE's
        temporal factor of frames, as a Cosmos predictor's conditioning video is encoded."""
        batch, steps = frames.shape[:2]
        flat = frames.flatten(0, 1).to(self.vae.dtype)
        if flat.shape[-1] != self.image_size or flat.shape[-2] != self.image_size:
            flat = F.interpolate(flat, size=(self.image_size, self.image_size), mode="area")
        video = flat.unflatten(0, (batch, steps)).transpose(1, 2)
        latents = self.vae.encode(video).latent_dist.mode()
        latents = (latents - self.latents_mean.view(1, -1, 1, 1, 1)) / self.latents_std.view(1, -1, 1, 1, 1)
        return latents.to(flat.dtype).transpose(1, 2)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, T, C, h, w) -> frames (B, T, 3, H, W) in [-1, 1]."""
        batch, steps = latents.shape[:2]
        flat = latents.flatten(0, 1).to(self.vae.dtype)
        flat = flat * self.latents_std.view(1, -1, 1, 1) + self.latents_mean.view(1, -1, 1, 1)
        frames = self.vae.decode(flat.unsqueeze(2)).sample[:, :, 0].clamp(-1, 1)
        return frames.unflatten(0, (batch, steps))

    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, T, C, h, w) of one latent video (a first frame, then latent frames that each
        pack the VAE's temporal factor of frames, as a Cosmos predictor makes them) -> its frames
        (B, F, 3, H, W) in [-1, 1], F = 1 + factor x (T - 1)."""
        video = latents.transpose(1, 2).to(self.vae.dtype)
        video = video * self.latents_std.view(1, -1, 1, 1, 1) + self.latents_mean.view(1, -1, 1, 1, 1)
        return self.vae.decode(video).sample.clamp(-1, 1).transpose(1, 2)


def _channel_stat(values: list[float] | None, channels: int, default: float) -> torch.Tensor:
    if values is None:
        return torch.full((channels,), default)
    return torch.tensor(values, dtype=torch.float32)[:channels]
