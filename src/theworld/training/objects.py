"""Recipe 3: the object reader's detector, trained to decode each object's state from encoded and imagined latents.

Targets come from the simulator. Imagined latents (the dynamics' rollout from frame t) are paired with the
true states of the frames they imagine, so the reader learns to read the world model's own predictions, which
are blurrier than encodings of real frames: that is what it reads at inference.
"""

from itertools import permutations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from theworld.modeling.dynamics import WorldDynamics
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.object_reader import ObjectFacts, ObjectReader, object_fact_names, pair_fact_names
from theworld.toyworld import Clip, simulate, split_seeds
from theworld.toyworld.dataset import GHOSTS
from theworld.toyworld.language import MIN_OFFSET, MIN_SPEED_RATIO
from theworld.toyworld.physics import CONTACT_MARGIN, KINDS, floor_y
from theworld.training.data import to_model_range
from theworld.training.dynamics import encode_clips
from theworld.training.loop import optimize

__all__ = [
    "RADIUS_SCALE",
    "VELOCITY_SCALE",
    "fact_accuracy",
    "fact_data",
    "fact_targets",
    "object_targets",
    "reading_data",
    "reading_errors",
    "train_object_facts",
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


def fact_targets(clip: Clip, t: int, slot_names: list[str], max_steps: int) -> tuple[torch.Tensor, ...]:
    """What `ObjectFacts` should decode about frame t of `clip`, by the simulator: object targets (slots, facts),
    pair targets (slots, slots, facts), and masks of the same shapes that leave out absent objects and the cases
    the question generator calls too close to call (`toyworld.language`)."""
    size = clip.frames.shape[2]
    slots = len(slot_names)
    objects, object_mask = np.zeros((2, slots, len(object_fact_names(max_steps))), dtype=np.float32)
    pairs, pair_mask = np.zeros((2, slots, slots, len(pair_fact_names(max_steps))), dtype=np.float32)
    now = clip.states[t]
    slot_of = [slot_names.index(s.colour) for s in now]
    for k in range(1, max_steps + 1):
        future = clip.states[t + 1 : t + k + 1]
        for j, s in enumerate(future[-1]):
            columns = slice(3 * (k - 1), 3 * k)  # right, bottom, hit_floor (`object_fact_names`)
            dx, dy = s.x - size / 2, s.y - size / 2
            hit = any(frame[j].hit_floor for frame in future)
            closest = min(floor_y(size) - frame[j].y - frame[j].radius for frame in future)
            objects[slot_of[j], columns] = (dx > 0, dy > 0, hit)
            clear = (abs(dx) >= MIN_OFFSET, abs(dy) >= MIN_OFFSET, hit or closest >= MIN_OFFSET)
            object_mask[slot_of[j], columns] = clear
        speeds = [np.mean([frame[j].speed for frame in future]) for j in range(len(now))]
        for i, j in permutations(range(len(now)), 2):
            a, b = slot_of[i], slot_of[j]
            met = any(now[j].colour in frame[i].touching for frame in future)
            gap = min(np.hypot(f[i].x - f[j].x, f[i].y - f[j].y) - f[i].radius - f[j].radius for f in future)
            columns = slice(3 + 2 * (k - 1), 3 + 2 * k)  # faster, meet
            pairs[a, b, columns] = (speeds[i] > speeds[j], met)
            clear = max(speeds[i], speeds[j]) >= MIN_SPEED_RATIO * min(speeds[i], speeds[j])
            pair_mask[a, b, columns] = (clear, met or gap >= CONTACT_MARGIN + MIN_OFFSET)
    for i, j in permutations(range(len(now)), 2):
        a, b = now[i], now[j]
        pairs[slot_of[i], slot_of[j], :3] = (a.x < b.x, a.y < b.y, a.radius > b.radius)
        pair_mask[slot_of[i], slot_of[j], :3] = (
            abs(a.x - b.x) >= MIN_OFFSET,
            abs(a.y - b.y) >= MIN_OFFSET,
            a.radius != b.radius,
        )
    return tuple(map(torch.from_numpy, (objects, object_mask, pairs, pair_mask)))


@torch.no_grad()
def fact_data(model: TheWorld, split: str, num_clips: int, batch_size: int = 64) -> tuple[torch.Tensor, ...]:
    """The courses (N, slots, course) the language model's mentions get, read from single frames of `split`'s
    first `num_clips` clips and their imagined futures exactly as at inference, with `fact_targets` for each:
    every frame that has its ghosts and `max_world_steps` true future frames after it."""
    steps = model.config.max_world_steps
    clips = [simulate(seed) for seed in split_seeds(split, num_clips)]
    pairs = [(clip, t) for clip in clips for t in range(GHOSTS, len(clip.states) - steps)]
    frames = to_model_range(np.stack([clip.frames[t] for clip, t in pairs]))
    courses = []
    for start in tqdm(range(0, len(frames), batch_size), desc=f"reading {split} frames", leave=False):
        latents = model.imagine(frames[start : start + batch_size], steps)
        states = model.object_reader.read(latents.flatten(0, 1)).unflatten(0, latents.shape[:2])
        courses.append(model.object_reader.courses(states))
    names = model.config.world_objects["names"]
    per_frame = [fact_targets(clip, t, names, steps) for clip, t in pairs]
    targets = [torch.stack(parts) for parts in zip(*per_frame, strict=True)]
    return torch.cat(courses), *targets


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
    """Fit the reader's fact heads on `fact_data` (courses and targets); the detector is not touched."""
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


@torch.no_grad()
def fact_accuracy(reader: ObjectReader, data: tuple[torch.Tensor, ...]) -> dict[str, float]:
    """Accuracy of each fact (over every future step) on `fact_data`, where the mask keeps it."""
    courses, objects, object_mask, pairs, pair_mask = data
    object_hits = (reader.facts.objects(courses) > 0) == (objects > 0)
    pair_hits = (reader.facts.every_pair(courses) > 0) == (pairs > 0)
    accuracy: dict[str, list[torch.Tensor]] = {}
    steps = reader.max_steps
    for names, hits, mask in (
        (object_fact_names(steps), object_hits, object_mask),
        (pair_fact_names(steps), pair_hits, pair_mask),
    ):
        for column, name in enumerate(names):
            family = name.rsplit("_", 1)[0] if name[-1].isdigit() else name
            kept = mask[..., column] > 0
            accuracy.setdefault(family, []).append(hits[..., column][kept].float())
    return {family: float(torch.cat(parts).mean()) for family, parts in accuracy.items()}
