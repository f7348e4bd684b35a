"""Do predicted frames move objects the way the simulator does? Centroid error against ground truth.

For held-out clips (split "test") the model sees `context` frames and predicts `steps` more. Each object is
found in a predicted frame by its palette colour (`theworld.toyworld.COLOURS`; trail ghosts are blended
towards the background, so they do not match) and its centroid is compared with the simulator's state.
The same measurement runs on the copy-the-last-frame baseline and, as a floor, on the true frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from theworld.toyworld import COLOURS, ShapeState, simulate, split_seeds

__all__ = ["TrajectoryReport", "locate", "trajectory_error"]

MATCH_DISTANCE = 60.0  # RGB distance to the palette colour; neighbours in the palette are >= 84 apart
MIN_PIXELS = 3


def locate(frame: np.ndarray, colour: str) -> tuple[float, float] | None:
    """Centroid (x, y) in pixels of the pixels of `colour` in a (H, W, 3) uint8 frame, or None if absent."""
    target = np.array(COLOURS[colour], dtype=np.float64)
    rows, cols = np.nonzero(np.linalg.norm(frame.astype(np.float64) - target, axis=-1) < MATCH_DISTANCE)
    if len(rows) < MIN_PIXELS:
        return None
    return float(cols.mean() + 0.5), float(rows.mean() + 0.5)


def _centroid(state: ShapeState) -> tuple[float, float]:
    """Where `locate` should find a shape: a triangle's area centroid sits r/3 below its centre."""
    return state.x, state.y + (state.radius / 3 if state.kind == "triangle" else 0.0)


@dataclass(frozen=True)
class TrajectoryReport:
    """Mean centroid error in pixels per predicted step (index 0 = one frame ahead)."""

    model: list[float]
    copy_last: list[float]
    true_frames: list[float]  # the detector on the simulator's own frames: the floor of this measure
    found: float  # share of (object, step) pairs the detector found in the model's frames
    num_clips: int

    def table(self) -> str:
        rows = [*(str(k + 1) for k in range(len(self.model))), "mean"]
        columns = [[*values, float(np.mean(values))] for values in (self.model, self.copy_last, self.true_frames)]
        lines = ["step  model  copy-last  true-frames"]
        lines += [f"{r:>4s}  {m:5.2f}  {c:9.2f}  {t:11.2f}" for r, m, c, t in zip(rows, *columns, strict=True)]
        return "\n".join(lines) + f"\n(objects found in model frames: {self.found:.0%}, {self.num_clips} clips)"


def _errors(frames: np.ndarray, last_context: np.ndarray, truth: list[list[ShapeState]]) -> tuple[list, int]:
    """Per step, the errors of all objects; a missing object keeps its last found position."""
    per_step, found = [], 0
    last = {s.colour: locate(last_context, s.colour) or _centroid(s) for s in truth[0]}
    for frame, states in zip(frames, truth, strict=True):
        errors = []
        for s in states:
            where = locate(frame, s.colour)
            found += where is not None
            last[s.colour] = where or last[s.colour]
            errors.append(float(np.hypot(*np.subtract(last[s.colour], _centroid(s)))))
        per_step.append(errors)
    return per_step, found


def trajectory_error(
    predict: Callable[[np.ndarray, int], np.ndarray],
    num_clips: int = 16,
    context: int = 2,
    steps: int = 4,
    first: int = 4,
    split: str = "test",
) -> TrajectoryReport:
    """Score `predict(context_frames, steps) -> frames` on the first `num_clips` clips of `split` ("val" to choose
    between models, "test" to report).

    Frames `first - context .. first - 1` are the context; frames `first .. first + steps - 1` are scored.
    """
    model, copy, true = [[] for _ in range(steps)], [[] for _ in range(steps)], [[] for _ in range(steps)]
    found = total = 0
    for seed in split_seeds(split, num_clips):
        clip = simulate(seed, first + steps)
        seen, truth = clip.frames[first - context : first], clip.states[first:]
        predicted = predict(seen, steps)
        for bucket, frames in ((model, predicted), (copy, np.repeat(seen[-1:], steps, 0)), (true, clip.frames[first:])):
            per_step, hits = _errors(frames, seen[-1], truth)
            for k, errors in enumerate(per_step):
                bucket[k].extend(errors)
            if bucket is model:
                found, total = found + hits, total + sum(map(len, per_step))
    mean = lambda rows: [float(np.mean(r)) for r in rows]  # noqa: E731
    return TrajectoryReport(mean(model), mean(copy), mean(true), found / max(total, 1), num_clips)
