"""The dynamics model, trained to predict the next frame's latents (what `num_world_steps` runs)."""

import torch

from theworld.modeling.dynamics import WorldDynamics
from theworld.training.loop import optimize

__all__ = ["train_dynamics"]


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
