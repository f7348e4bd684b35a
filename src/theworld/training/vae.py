"""The world encoder's VAE: a tiny Cosmos-style VAE (`diffusers.AutoencoderKLWan`) trained on ToyWorld frames."""

import torch
from diffusers import AutoencoderKLWan

from theworld.training.loop import optimize

__all__ = ["latent_statistics", "train_vae"]


def train_vae(
    vae: AutoencoderKLWan,
    frames: torch.Tensor,
    steps: int,
    batch_size: int = 32,
    lr: float = 2e-3,
    kl_weight: float = 1e-6,
    foreground_weight: float = 10.0,
    seed: int = 0,
) -> float:
    """Fit `vae` to reconstruct `frames` (N, 3, H, W) in [-1, 1]; returns the last reconstruction MSE.

    Pixels that differ from the frame's background count `foreground_weight` times: ToyWorld's shapes cover a
    few percent of a frame, and a plain MSE learns the background first and blurs the shapes' colours."""
    generator = torch.Generator().manual_seed(seed)

    def step_loss() -> tuple[torch.Tensor, float]:
        batch = frames[torch.randint(len(frames), (batch_size,), generator=generator)].unsqueeze(2)
        posterior = vae.encode(batch).latent_dist
        # The mean, not a sample, goes to the decoder: the world encoder reads the mean at inference too.
        squared_error = (vae.decode(posterior.mean).sample - batch).pow(2)
        weighted = (squared_error * _foreground_weight(batch, foreground_weight)).mean()
        return weighted + kl_weight * posterior.kl().mean(), squared_error.mean().item()

    vae.train()
    mse = optimize(vae.parameters(), steps, lr, step_loss, "vae")
    vae.eval()
    return mse


def _foreground_weight(batch: torch.Tensor, weight: float) -> torch.Tensor:
    """1 on background pixels (the colour of the top-left corner), `weight` elsewhere."""
    background = batch[..., :1, :1]
    is_foreground = (batch - background).abs().amax(dim=1, keepdim=True) > 0.05
    return 1.0 + (weight - 1.0) * is_foreground.float()


@torch.no_grad()
def latent_statistics(vae: AutoencoderKLWan, frames: torch.Tensor, batch_size: int = 64) -> tuple[list, list]:
    """Per-channel mean and std of the posterior means: the `latents_mean` / `latents_std` of the VAE config."""
    latents = torch.cat(
        [
            vae.encode(frames[i : i + batch_size].unsqueeze(2)).latent_dist.mean
            for i in range(0, len(frames), batch_size)
        ]
    )
    channels = latents.transpose(0, 1).flatten(1)
    return channels.mean(1).tolist(), channels.std(1).clamp_min(1e-3).tolist()
