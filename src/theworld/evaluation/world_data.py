"""ToyWorld as the world parts see it: simulated clips, their latents, and what the simulator says is in them.

The object reader is trained on these targets and scored against them, so they live here, below training: the
clips and targets for a split are the same whichever of the two asks.
"""

from itertools import permutations

import numpy as np
import torch
from rich.console import Console
from rich.progress import track

from theworld.media import to_model_range
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.object_reader import object_fact_names, pair_fact_names
from theworld.modeling.world_encoder import WorldEncoder
from theworld.toyworld import Clip, simulate, split_seeds
from theworld.toyworld.dataset import GHOSTS
from theworld.toyworld.language import MIN_OFFSET, MIN_SPEED_RATIO
from theworld.toyworld.physics import CONTACT_MARGIN, KINDS, floor_y

__all__ = [
    "RADIUS_SCALE",
    "VELOCITY_SCALE",
    "encode_clips",
    "fact_data",
    "fact_targets",
    "object_targets",
    "reading_data",
    "simulate_clips",
]

# Radii and velocities are small fractions of the frame; scaled so every regressed value is of order 0.1-1.
RADIUS_SCALE = 8.0
VELOCITY_SCALE = 10.0

progress_console = Console(stderr=True)


def simulate_clips(split: str, num_clips: int, num_frames: int = 12, size: int = 64) -> np.ndarray:
    """(N, T, H, W, 3) uint8 frames of the first `num_clips` clips of `split`."""
    return np.stack([simulate(seed, num_frames, size).frames for seed in split_seeds(split, num_clips)])


@torch.no_grad()
def encode_clips(world_encoder: WorldEncoder, clips: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """(N, T, 3, H, W) frames -> (N, T, C, h, w) normalised latents."""
    return torch.cat([world_encoder.encode(clips[i : i + batch_size]) for i in range(0, len(clips), batch_size)])


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
    every frame that has its ghosts and `max_world_steps` true future frames after it. The futures imagined are
    the model's `num_world_steps`, as at inference: a model that imagines none reads the current frame only."""
    steps = model.config.max_world_steps
    imagined = model.config.num_world_steps
    clips = [simulate(seed) for seed in split_seeds(split, num_clips)]
    pairs = [(clip, t) for clip in clips for t in range(GHOSTS, len(clip.states) - steps)]
    frames = to_model_range(np.stack([clip.frames[t] for clip, t in pairs]))
    courses = []
    starts = range(0, len(frames), batch_size)
    for start in track(starts, description=f"reading {split} frames", console=progress_console, transient=True):
        latents = model.imagine(frames[start : start + batch_size], imagined)
        states = model.object_reader.read(latents.flatten(0, 1)).unflatten(0, latents.shape[:2])
        courses.append(model.object_reader.courses(states))
    names = model.config.world_objects["names"]
    per_frame = [fact_targets(clip, t, names, steps) for clip, t in pairs]
    targets = [torch.stack(parts) for parts in zip(*per_frame, strict=True)]
    return torch.cat(courses), *targets
