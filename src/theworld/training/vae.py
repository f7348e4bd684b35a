"""The world encoder's VAE: a tiny Cosmos-style VAE (`diffusers.AutoencoderKLWan`) trained on ToyWorld frames."""

import torch
from diffusers import AutoencoderKLWan

from theworld.toyworld import COLOURS, floor_y
from theworld.toyworld.render import BACKGROUND, TRAIL_ALPHAS
from theworld.training.loop import optimize

__all__ = ["latent_statistics", "train_vae"]

# In [-1, 1] units: halfway between the strongest ghost's largest difference from the background and the weakest
# full colour's, so that every ghost pixel is below it and every shape pixel above.
_COLOUR_REACH = [max(abs(c - b) for c, b in zip(rgb, BACKGROUND, strict=True)) / 127.5 for rgb in COLOURS.values()]
TRAIL_LIMIT = (max(TRAIL_ALPHAS) * max(_COLOUR_REACH) + min(_COLOUR_REACH)) / 2


def train_vae(
    vae: AutoencoderKLWan,
    frames: torch.Tensor,
    steps: int,
    batch_size: int = 32,
    lr: float = 2e-3,
    kl_weight: float = 1e-6,
    foreground_weight: float = 10.0,
    trail_weight: float = 1.0,
    seed: int = 0,
) -> float:
    """Fit `vae` to reconstruct `frames` (N, 3, H, W) in [-1, 1]; returns the last reconstruction MSE.

    Pixels that differ from the frame's background count `foreground_weight` times: ToyWorld's shapes cover a
    few percent of a frame, and a plain MSE learns the background first and blurs the shapes' colours. The faded
    motion trails count `trail_weight` times more again: they are all a single frame shows of a shape's velocity,
    and being faint they cost little error when blurred away."""
    generator = torch.Generator().manual_seed(seed)

    def step_loss() -> tuple[torch.Tensor, float]:
        batch = frames[torch.randint(len(frames), (batch_size,), generator=generator)].unsqueeze(2)
        posterior = vae.encode(batch).latent_dist
        # The mean, not a sample, goes to the decoder: the world encoder reads the mean at inference too.
        squared_error = (vae.decode(posterior.mean).sample - batch).pow(2)
        weighted = (squared_error * _pixel_weights(batch, foreground_weight, trail_weight)).mean()
        return weighted + kl_weight * posterior.kl().mean(), squared_error.mean().item()

    vae.train()
    mse = optimize(vae.parameters(), steps, lr, step_loss, "vae")
    vae.eval()
    return mse


def _pixel_weights(batch: torch.Tensor, foreground_weight: float, trail_weight: float) -> torch.Tensor:
    """1 on background pixels (the colour of the top-left corner), `foreground_weight` elsewhere, times
    `trail_weight` on the pixels of a frame's faded trails. A trail pixel differs from the background by less than
    any shape's full colour does (ToyWorld blends ghosts at most half way), and lies above the floor."""
    difference = (batch - batch[..., :1, :1]).abs().amax(dim=1, keepdim=True)
    is_foreground = difference > 0.05
    is_trail = is_foreground & (difference < TRAIL_LIMIT)
    is_trail[..., int(floor_y(batch.shape[-1])) :, :] = False
    return (1.0 + (foreground_weight - 1.0) * is_foreground.float()) * (1.0 + (trail_weight - 1.0) * is_trail.float())


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
