"""The object reader's detector, trained to decode each object's state from encoded and imagined latents, and its
fact heads, trained on what it reads.

Targets come from the simulator (`evaluation.world_data`, which the evaluation scores against too). Imagined
latents (the dynamics' rollout from frame t) are paired with the true states of the frames they imagine, so the
reader learns to read the world model's own predictions, which are blurrier than encodings of real frames: that
is what it reads at inference.
"""

import torch
import torch.nn.functional as F

from theworld.modeling.dynamics import WorldDynamics
from theworld.modeling.object_reader import ObjectFacts, ObjectReader
from theworld.training.loop import optimize

__all__ = ["fact_loss", "reading_loss", "train_object_facts", "train_object_reader"]


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
        imagined = (
            dynamics.rollout(latents[clips[:, None], window], rollout_steps)  # (n, k, C, h, w)
            if rollout_steps
            else latents.new_zeros(len(clips), 0, *latents.shape[2:])
        )
    future = targets[clips[:, None], start[:, None] + torch.arange(1, rollout_steps + 1)]
    # As many encoded frames as imagined ones; a model that imagines nothing reads encoded frames only.
    frames = torch.randint(num_frames, (len(clips) * (rollout_steps or 2),), generator=generator)
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
    rollouts = max(batch_size // (2 * max(rollout_steps, 1)), 1)

    def step_loss() -> tuple[torch.Tensor, float]:
        loss = reading_loss(reader, *_samples(latents, targets, dynamics, rollout_steps, rollouts, generator))
        return loss, loss.item()

    reader.train()
    loss = optimize(reader.detector.parameters(), steps, lr, step_loss, "objects", warmup_fraction=0.05)
    reader.eval()
    return loss


def fact_loss(facts: ObjectFacts, courses: torch.Tensor, *targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked binary cross-entropy of the object and pair facts of a batch of courses (N, slots, course)."""
    objects, object_mask, pairs, pair_mask = targets
    object_logits = facts.objects(courses)
    pair_logits = facts.every_pair(courses)
    object_loss = F.binary_cross_entropy_with_logits(object_logits, objects, weight=object_mask, reduction="sum")
    pair_loss = F.binary_cross_entropy_with_logits(pair_logits, pairs, weight=pair_mask, reduction="sum")
    return object_loss / object_mask.sum().clamp(min=1), pair_loss / pair_mask.sum().clamp(min=1)


def train_object_facts(
    reader: ObjectReader,
    data: tuple[torch.Tensor, ...],
    steps: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
) -> float:
    """Fit the reader's fact heads on `world_data.fact_data` (courses and targets); the detector is not touched."""
    generator = torch.Generator().manual_seed(seed)

    def step_loss() -> tuple[torch.Tensor, float]:
        index = torch.randint(len(data[0]), (batch_size,), generator=generator)
        object_loss, pair_loss = fact_loss(reader.facts, *(part[index] for part in data))
        loss = object_loss + pair_loss
        return loss, loss.item()

    reader.train()
    loss = optimize(reader.facts.parameters(), steps, lr, step_loss, "facts", weight_decay=0.01, warmup_fraction=0.05)
    reader.eval()
    return loss
