"""A clip: rendered frames plus the ground-truth states they were drawn from, reproducible from a seed."""

from dataclasses import dataclass

import numpy as np

from .physics import ShapeState, initial_states, step
from .render import TRAIL_ALPHAS, render_frame

__all__ = ["Clip", "simulate"]


@dataclass
class Clip:
    """`frames[t]` is drawn from `states[t]` over ghosts of `states[t-2]` and `states[t-1]`, if any."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    states: list[list[ShapeState]]
    seed: int


def simulate(seed: int, num_frames: int = 12, size: int = 64) -> Clip:
    """Simulate and render `num_frames` frames; the same seed always gives identical frames and states."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    states = [initial_states(np.random.default_rng(seed), size)]
    for _ in range(num_frames - 1):
        states.append(step(states[-1], size))
    ghosts = len(TRAIL_ALPHAS)
    frames = np.stack([render_frame(s, states[max(0, t - ghosts) : t], size) for t, s in enumerate(states)])
    return Clip(frames=frames, states=states, seed=seed)
