"""Recipe 2: the dynamics model, trained to predict the next frame's latents (what `num_world_steps` runs)."""

import torch

from theworld.modeling.dynamics import WorldDynamics
from theworld.modeling.world_encoder import WorldEncoder
from theworld.training.loop import optimize

__all__ = ["encode_clips", "rollout_errors", "train_dynamics"]


@torch.no_grad()
def encode_clips(world_encoder: WorldEncoder, clips: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """(N, T, 3, H, W) frames -> (N, T, C, h, w) normalised latents."""
    return torch.cat([world_encoder.encode(clips[i : i + batch_size]) for i in range(0, len(clips), batch_size)])


def train_dynamics(
    dynamics: WorldDynamics,
    latents: torch.Tensor,
    steps: int,
    rollout_steps: int = 4,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> float:
    """Fit `dynamics` on clip latents (N, T, C, h, w) by rolling out `rollout_steps` frames from a random start,
    feeding its own predictions back, as inference does; returns the last mean squared error."""
    generator = torch.Generator().manual_seed(seed)
    context = dynamics.context_frames
    num_clips, num_frames = latents.shape[:2]
    window = torch.arange(-context + 1, rollout_steps + 1)

    def step_loss() -> tuple[torch.Tensor, float]:
        clips = torch.randint(num_clips, (batch_size,), generator=generator)
        start = torch.randint(context - 1, num_frames - rollout_steps, (batch_size,), generator=generator)
        sequence = latents[clips[:, None], start[:, None] + window]  # (B, context + rollout, C, h, w)
        loss = (dynamics.rollout(sequence[:, :context], rollout_steps) - sequence[:, context:]).pow(2).mean()
        return loss, loss.item()

    dynamics.train()
    error = optimize(dynamics.parameters(), steps, lr, step_loss, "dynamics")
    dynamics.eval()
    return error


@torch.no_grad()
def rollout_errors(
    dynamics: WorldDynamics, world_encoder: WorldEncoder, clips: torch.Tensor, start: int = 2, rollout_steps: int = 4
) -> dict[str, list[float]]:
    """Per-step errors of the imagined future against the true future of `clips` (N, T, 3, H, W), next to the
    copy-the-last-frame baseline: in latent space (the dynamics alone) and in pixels (decoded, frames in [0, 1])."""
    latents = encode_clips(world_encoder, clips[:, : start + 1 + rollout_steps])
    context = latents[:, start + 1 - dynamics.context_frames : start + 1]
    imagined = dynamics.rollout(context, rollout_steps)
    true_latents = latents[:, start + 1 :]
    frames = clips[:, start + 1 : start + 1 + rollout_steps]

    def per_step(prediction: torch.Tensor, truth: torch.Tensor) -> list[float]:
        return (prediction - truth).pow(2).mean(dim=(0, 2, 3, 4)).tolist()

    return {
        "latent_model": per_step(imagined, true_latents),
        "latent_copy_last_frame": per_step(latents[:, start : start + 1].expand_as(true_latents), true_latents),
        "pixel_model": per_step(world_encoder.decode(imagined) / 2, frames / 2),
        "pixel_copy_last_frame": per_step(clips[:, start : start + 1].expand_as(frames) / 2, frames / 2),
    }
