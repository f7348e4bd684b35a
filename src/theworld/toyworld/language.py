"""Captions and question/answer pairs about a clip frame, answered from the simulated ground truth.

Answers come from small closed vocabularies (`ANSWER_VOCAB`) so a tiny language model can learn them.
Static questions are about frame t; temporal ones are about frame t+k (k = `steps`, 1-4) and can only be
answered by predicting the dynamics. Questions whose answer is borderline (a shape within a few pixels of
a quadrant border, near-equal speeds, a near miss) are skipped rather than answered with a coin flip.
"""

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from .clip import Clip
from .physics import COLOURS, CONTACT_MARGIN, KINDS, ShapeState, floor_y

__all__ = ["ANSWER_VOCAB", "MAX_STEPS", "QA", "caption", "questions"]

MAX_STEPS = 4
NUMBERS = ("one", "two", "three")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
YES_NO = ("yes", "no")
ANSWER_VOCAB: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "count": NUMBERS,
    "left_of": YES_NO,
    "above": YES_NO,
    "larger": tuple(COLOURS),
    "future_quadrant": QUADRANTS,
    "hits_floor": YES_NO,
    "faster": tuple(COLOURS),
    "meet": YES_NO,
}

MIN_OFFSET = 3.0  # px: closer than this to a border / to each other is too close to call
MIN_SPEED_RATIO = 1.2  # "faster" needs one shape at least 20% faster than the other
MOVING = 0.5  # px/frame: slower components are described as not moving that way


@dataclass(frozen=True)
class QA:
    """One question with its closed-vocabulary answer; `kind` and `steps` let evaluation break scores down."""

    question: str
    answer: str
    family: str  # "static" (about frame t) or "temporal" (about frame t + steps)
    kind: str  # a key of ANSWER_VOCAB
    steps: int = 0


def _motion(s: ShapeState) -> str:
    horizontal = "right" if s.vx > MOVING else "left" if s.vx < -MOVING else ""
    vertical = "up" if s.vy < -MOVING else "down" if s.vy > MOVING else ""
    if horizontal and vertical:
        return f"moving {horizontal} and {vertical}"
    if horizontal:
        return f"moving {horizontal}"
    if vertical:
        return "falling" if vertical == "down" else "rising"
    return "at rest"


def caption(clip: Clip, t: int) -> str:
    """Describe every shape at frame t, left to right, e.g. "a large red ball moving right and up."."""
    shapes = sorted(clip.states[t], key=lambda s: s.x)
    return ", ".join(f"a {s.size} {s.colour} {s.kind} {_motion(s)}" for s in shapes) + "."


def _after(k: int) -> str:
    return "1 step" if k == 1 else f"{k} steps"


def _static(shapes: list[ShapeState]) -> list[QA]:
    qas = [QA("how many shapes are there?", NUMBERS[len(shapes) - 1], "static", "count")]
    for kind in KINDS:
        same = [s for s in shapes if s.kind == kind]
        if len(same) == 1:
            qas.append(QA(f"what colour is the {kind}?", same[0].colour, "static", "colour"))
    for a, b in permutations(shapes, 2):
        pair = f"the {a.colour} shape", f"the {b.colour} shape"
        if abs(a.x - b.x) >= MIN_OFFSET:
            qas.append(QA(f"is {pair[0]} left of {pair[1]}?", _yes(a.x < b.x), "static", "left_of"))
        if abs(a.y - b.y) >= MIN_OFFSET:
            qas.append(QA(f"is {pair[0]} above {pair[1]}?", _yes(a.y < b.y), "static", "above"))
        if a.radius != b.radius:
            larger = a if a.radius > b.radius else b
            qas.append(QA(f"which is larger, {pair[0]} or {pair[1]}?", larger.colour, "static", "larger"))
    return qas


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _temporal(clip: Clip, t: int, k: int, rng: np.random.Generator) -> list[QA]:
    size = clip.frames.shape[2]
    future = clip.states[t + 1 : t + k + 1]  # frames t+1 .. t+k; shape j is at index j in every frame
    now, later, after = clip.states[t], clip.states[t + k], _after(k)
    qas: list[QA] = []
    for j, s in enumerate(later):
        name = f"the {s.colour} shape"
        dx, dy = s.x - size / 2, s.y - size / 2
        if min(abs(dx), abs(dy)) >= MIN_OFFSET:
            where = f"{'top' if dy < 0 else 'bottom'} {'left' if dx < 0 else 'right'}"
            qas.append(QA(f"where will {name} be after {after}?", where, "temporal", "future_quadrant", k))
        hit = any(frame[j].hit_floor for frame in future)
        closest = min(floor_y(size) - frame[j].y - frame[j].radius for frame in future)
        if hit or closest >= MIN_OFFSET:
            question = f"will {name} hit the floor within {after}?"
            qas.append(QA(question, _yes(hit), "temporal", "hits_floor", k))
    speeds = [np.mean([frame[j].speed for frame in future]) for j in range(len(now))]
    for i, j in permutations(range(len(now)), 2):
        a, b = now[i].colour, now[j].colour
        if max(speeds[i], speeds[j]) >= MIN_SPEED_RATIO * min(speeds[i], speeds[j]):
            faster = a if speeds[i] > speeds[j] else b
            question = f"which will move faster over the next {after}, the {a} shape or the {b} shape?"
            qas.append(QA(question, faster, "temporal", "faster", k))
        if i < j:
            meet = any(b in frame[i].touching for frame in future)
            gap = min(np.hypot(f[i].x - f[j].x, f[i].y - f[j].y) - f[i].radius - f[j].radius for f in future)
            if meet or gap >= CONTACT_MARGIN + MIN_OFFSET:
                first, second = (a, b) if rng.random() < 0.5 else (b, a)
                question = f"will the {first} shape and the {second} shape meet within {after}?"
                qas.append(QA(question, _yes(meet), "temporal", "meet", k))
    return qas


def questions(clip: Clip, t: int, rng: np.random.Generator) -> list[QA]:
    """Every unambiguous question about frame t (temporal ones for each k with t+k in the clip), shuffled."""
    if not 0 <= t < len(clip.states):
        raise ValueError(f"frame t={t} is outside the clip's {len(clip.states)} frames")
    qas = _static(clip.states[t])
    for k in range(1, min(MAX_STEPS, len(clip.states) - 1 - t) + 1):
        qas += _temporal(clip, t, k, rng)
    return [qas[i] for i in rng.permutation(len(qas))]
