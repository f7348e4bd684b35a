"""Recipe 3: the object reader's detector, trained to decode each object's state from encoded and imagined latents.

Targets come from the simulator. Imagined latents (the dynamics' rollout from frame t) are paired with the
true states of the frames they imagine, so the reader learns to read the world model's own predictions, which
are blurrier than encodings of real frames: that is what it reads at inference.
"""

import numpy as np
import torch
import torch.nn.functional as F

from theworld.modeling.dynamics import WorldDynamics
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.object_reader import ObjectReader
from theworld.toyworld import Clip, simulate, split_seeds
from theworld.toyworld.physics import KINDS
from theworld.training.data import to_model_range
from theworld.training.dynamics import encode_clips
from theworld.training.loop import optimize

__all__ = [
    "RADIUS_SCALE",
    "VELOCITY_SCALE",
    "object_targets",
    "reading_data",
    "reading_errors",
    "train_object_reader",
]

# Radii and velocities are small fractions of the frame; scaled so every regressed value is of order 0.1-1.
RADIUS_SCALE = 8.0
VELOCITY_SCALE = 10.0


def object_targets(clips: list[Clip], slot_names: list[str]) -> torch.Tensor:
    """(N, T, slots, 7) targets per clip frame: present, x, y, radius, kind index, vx, vy (see `OBJECT_STATE`),
    positions as fractions of the frame; absent slots are all zero."""
    size = clips[0].frames.shape[2]
    targets = np.zeros((len(clips), len(clips[0].states), len(slot_names), 7), dtype=np.float32)
    for n, clip in enumerate(clips):
        for t, shapes in enumerate(clip.states):
            for s in shapes:
                row = (1.0, s.x / size, s.y / size, s.radius / size * RADIUS_SCALE, KINDS.index(s.kind))
                velocity = (s.vx / size * VELOCITY_SCALE, s.vy / size * VELOCITY_SCALE)
                targets[n, t, slot_names.index(s.colour)] = (*row, *velocity)
    return torch.from_numpy(targets)


def reading_data(model: TheWorld, split: str, num_clips: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The latents (N, T, C, h, w) of the first `num_clips` clips of `split`, encoded by `model`'s world encoder,
    and their targets (N, T, slots, 7) for its object reader's slots."""
    clips = [simulate(seed) for seed in split_seeds(split, num_clips)]
    latents = encode_clips(model.world_encoder, to_model_range(np.stack([clip.frames for clip in clips])))
    return latents, object_targets(clips, model.config.world_objects["names"])


def reading_loss(reader: ObjectReader, latents: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Presence (all slots) plus position, radius, kind and velocity (present slots only)."""
    states = reader.read(latents)
    present = targets[..., 0]
    loss = F.binary_cross_entropy_with_logits(states[..., 0], present)
    shown = present > 0
    if shown.any():
        kinds = reader.num_kinds
        regressed = torch.cat([states[..., 1:4], states[..., 4 + kinds :]], dim=-1)[shown]
        truth = torch.cat([targets[..., 1:4], targets[..., 5:]], dim=-1)[shown]
        position_weight = torch.tensor([10.0, 10.0, 1.0, 1.0, 1.0])  # positions decide most answers: weigh them up
        loss = loss + ((regressed - truth).pow(2) * position_weight).mean() * 10
        loss = loss + F.cross_entropy(states[..., 4 : 4 + kinds][shown], targets[..., 4][shown].long())
    return loss


def _samples(
    latents: torch.Tensor, targets: torch.Tensor, dynamics: WorldDynamics, rollout_steps: int, rollouts: int, generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`rollouts` rollouts of k imagined frames, and as many encoded frames at random times."""
    num_clips, num_frames = latents.shape[:2]
    context = dynamics.context_frames
    clips = torch.randint(num_clips, (rollouts,), generator=generator)
    start = torch.randint(context - 1, num_frames - rollout_steps, (len(clips),), generator=generator)
    window = start[:, None] + torch.arange(-context + 1, 1)
    with torch.no_grad():
        imagined = dynamics.rollout(latents[clips[:, None], window], rollout_steps)  # (n, k, C, h, w)
    future = targets[clips[:, None], start[:, None] + torch.arange(1, rollout_steps + 1)]
    frames = torch.randint(num_frames, (len(clips) * rollout_steps,), generator=generator)
    shown = torch.randint(num_clips, (len(frames),), generator=generator)
    return (
        torch.cat([latents[shown, frames], imagined.flatten(0, 1)]),
        torch.cat([targets[shown, frames], future.flatten(0, 1)]),
    )


def train_object_reader(
    reader: ObjectReader,
    dynamics: WorldDynamics,
    latents: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    rollout_steps: int = 4,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> float:
    """Fit the reader's detector on clip latents (N, T, C, h, w) and their targets (N, T, slots, 7)."""
    generator = torch.Generator().manual_seed(seed)
    rollouts = max(batch_size // (2 * rollout_steps), 1)

    def step_loss() -> tuple[torch.Tensor, float]:
        loss = reading_loss(reader, *_samples(latents, targets, dynamics, rollout_steps, rollouts, generator))
        return loss, loss.item()

    reader.train()
    loss = optimize(reader.detector.parameters(), steps, lr, step_loss, "objects", warmup_fraction=0.05)
    reader.eval()
    return loss


@torch.no_grad()
def reading_errors(
    reader: ObjectReader,
    dynamics: WorldDynamics,
    latents: torch.Tensor,
    targets: torch.Tensor,
    start: int = 2,
    rollout_steps: int = 4,
    size: int = 64,
) -> dict[str, list[float]]:
    """Mean position error in pixels of present objects, and presence accuracy, for the encoded frame `start`
    and each imagined frame after it."""
    context = latents[:, start + 1 - dynamics.context_frames : start + 1]
    frames = torch.cat([latents[:, start : start + 1], dynamics.rollout(context, rollout_steps)], dim=1)
    truth = targets[:, start : start + 1 + rollout_steps]
    states = reader.read(frames.flatten(0, 1)).unflatten(0, frames.shape[:2])
    shown = truth[..., 0] > 0
    distance = (states[..., 1:3] - truth[..., 1:3]).norm(dim=-1) * size
    position = [float(distance[:, k][shown[:, k]].mean()) for k in range(frames.shape[1])]
    presence = [float(((states[:, k, :, 0] > 0) == shown[:, k]).float().mean()) for k in range(frames.shape[1])]
    return {"position_error_px": position, "presence_accuracy": presence}
