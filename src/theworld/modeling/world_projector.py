"""The world projector: per-frame latents -> world tokens in the language model's embedding space."""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WorldProjector"]


class WorldProjector(nn.Module):
    """Space-to-depth by `pool`, an MLP, and a learned embedding of the world step (0 = the current frame).

    Space-to-depth keeps every latent value (unlike average pooling), so the reduction in token count costs no
    information, only width.
    """

    def __init__(self, latent_channels: int, pool: int, hidden_size: int, text_hidden_size: int, max_steps: int):
        super().__init__()
        self.pool = pool
        in_features = latent_channels * pool * pool
        self.norm = nn.LayerNorm(in_features)
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden_size), nn.GELU(), nn.Linear(hidden_size, text_hidden_size)
        )
        self.step_embedding = nn.Embedding(max_steps + 1, text_hidden_size)

    def tokens_per_frame(self, latent_size: int) -> int:
        return (latent_size // self.pool) ** 2

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, T, C, h, w) -> (B, T * tokens_per_frame, D), frame by frame in time order."""
        batch, steps = latents.shape[:2]
        tokens = F.pixel_unshuffle(latents.flatten(0, 1), self.pool)  # (B*T, C*p*p, h/p, w/p)
        tokens = tokens.flatten(2).transpose(1, 2)  # (B*T, N, C*p*p)
        tokens = self.mlp(self.norm(tokens)).unflatten(0, (batch, steps))  # (B, T, N, D)
        step_ids = torch.arange(steps, device=latents.device)
        tokens = tokens + self.step_embedding(step_ids)[None, :, None, :]
        return tokens.flatten(1, 2)
