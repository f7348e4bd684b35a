"""A discrete per-frame video tokenizer: a small conv encoder, FSQ, and a conv decoder.

FSQ (finite scalar quantisation, Mentzer et al. 2023) bounds each latent channel with a tanh and rounds it
to one of `levels[i]` values; the code of a latent position is the mixed-radix number of its rounded
channels, so levels (8, 5, 5, 5) give 1000 codes and no codebook to learn or collapse. It is written here
by hand (a dozen lines) because the maintained PyPI implementations (`vector-quantize-pytorch`,
Cosmos' own tokenizer) pull in dependencies this project cannot install on CPU (torchvision, einx).

A 64x64 RGB frame in [-1, 1] becomes an 8x8 grid of codes (`encode`), and back (`decode`).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

__all__ = ["FSQ", "VideoTokenizer"]


class FSQ(nn.Module):
    """Finite scalar quantisation: (B, len(levels), h, w) floats <-> (B, h, w) integer codes."""

    def __init__(self, levels: tuple[int, ...]):
        super().__init__()
        levels_t = torch.tensor(levels, dtype=torch.long)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]], dtype=torch.long), 0)
        self.register_buffer("levels", levels_t, persistent=False)
        self.register_buffer("basis", basis, persistent=False)
        self.num_codes = int(torch.prod(levels_t))

    @staticmethod
    def _per_channel(values: torch.Tensor, ndim: int = 4) -> torch.Tensor:
        return values.view(1, -1, *([1] * (ndim - 2)))

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Bound, round (straight-through) and rescale to [-1, 1]; keeps the shape of `z`."""
        levels = self._per_channel(self.levels, z.dim()).to(z.dtype)
        half_l = (levels - 1) * (1 + 1e-3) / 2
        offset = (levels % 2 == 0).to(z.dtype) * 0.5  # even levels: values -L/2 .. L/2 - 1
        bounded = torch.tanh(z + torch.atanh(offset / half_l)) * half_l - offset
        rounded = bounded + (bounded.round() - bounded).detach()
        return rounded / (levels // 2)

    def codes_from_quantized(self, q: torch.Tensor) -> torch.Tensor:
        half = self._per_channel(self.levels // 2, q.dim())
        digits = (q * half).round().long() + half
        return (digits * self._per_channel(self.basis, q.dim())).sum(1)

    def quantized_from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        ndim = codes.dim() + 1
        digits = (codes.unsqueeze(1) // self._per_channel(self.basis, ndim)) % self._per_channel(self.levels, ndim)
        half = self._per_channel(self.levels // 2, ndim)
        return (digits - half).float() / half


def _down(cin: int, cout: int, refine: bool) -> list[nn.Module]:
    """Halve the resolution; `refine` adds a 3x3 conv (only at the cheap low resolutions)."""
    layers = [nn.Conv2d(cin, cout, 4, 2, 1), nn.GELU()]
    return layers + ([nn.Conv2d(cout, cout, 3, 1, 1), nn.GELU()] if refine else [])


def _up(cin: int, cout: int, refine: bool) -> list[nn.Module]:
    layers = [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.GELU()]
    return layers + ([nn.Conv2d(cout, cout, 3, 1, 1), nn.GELU()] if refine else [])


class VideoTokenizer(ModelMixin, ConfigMixin):
    """Frames (N, 3, H, W) in [-1, 1] <-> codes (N, H/f, W/f) in [0, num_codes), f = 2^len(channels).

    `channels` are the widths after each halving; 3x3 refinement convs run below the full resolution's
    half only, where they cost least, so the tokenizer trains quickly on one CPU thread.
    """

    @register_to_config
    def __init__(self, levels: tuple[int, ...] = (8, 5, 5, 5), channels: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        self.fsq = FSQ(tuple(levels))
        widths = [3, *channels]
        down = [m for i in range(len(channels)) for m in _down(widths[i], widths[i + 1], refine=i > 0)]
        self.encoder = nn.Sequential(*down, nn.Conv2d(channels[-1], len(levels), 1))
        up_widths = [*channels[::-1], 16]
        up = [m for i in range(len(channels)) for m in _up(up_widths[i], up_widths[i + 1], i < len(channels) - 1)]
        self.decoder = nn.Sequential(
            nn.Conv2d(len(levels), channels[-1], 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(channels[-1], channels[-1], 3, 1, 1),
            nn.GELU(),
            *up,
            nn.Conv2d(16, 3, 3, 1, 1),
        )

    @property
    def num_codes(self) -> int:
        return self.fsq.num_codes

    @property
    def downsample(self) -> int:
        return 2 ** len(self.config.channels)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Reconstruct `frames` through the quantised bottleneck (gradients pass straight through)."""
        return self.decoder(self.fsq.quantize(self.encoder(frames)))

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return self.fsq.codes_from_quantized(self.fsq.quantize(self.encoder(frames)))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.fsq.quantized_from_codes(codes).to(self.dtype)).clamp(-1, 1)
