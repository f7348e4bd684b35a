"""Train / val / test examples: one frame, its next frames, and one question about it.

Splits come from disjoint seed ranges, so no clip is ever shared between them. Questions are picked so
that kinds, and answers within a kind, stay as balanced as the clips allow: a model that always says
"no" should not score well.
"""

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from .clip import simulate
from .language import ANSWER_VOCAB, MAX_STEPS, QA, questions

__all__ = ["SPLIT_OFFSETS", "Example", "make_examples", "split_seeds"]

SPLIT_OFFSETS: dict[str, int] = {"train": 0, "val": 10_000_000, "test": 20_000_000}
SPLIT_SIZE = 10_000_000
GHOSTS = 2  # frames t-2 and t-1 must exist so that the image at t shows its motion trail


@dataclass
class Example:
    """A flat record: the image the model sees, the frames a dynamics model should predict, and a Q&A."""

    seed: int
    t: int
    image: np.ndarray  # (H, W, 3) uint8, frame t
    future: np.ndarray  # (MAX_STEPS, H, W, 3) uint8, frames t+1 .. t+MAX_STEPS, for training the dynamics
    question: str
    answer: str
    family: str
    kind: str
    steps: int


def split_seeds(split: str, n: int) -> list[int]:
    """The first `n` clip seeds of `split`; the ranges of different splits never overlap."""
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_OFFSETS)}")
    if not 0 <= n <= SPLIT_SIZE:
        raise ValueError(f"n must be in [0, {SPLIT_SIZE}], got {n}")
    return list(range(SPLIT_OFFSETS[split], SPLIT_OFFSETS[split] + n))


def make_examples(
    split: str, num_clips: int, num_frames: int = 12, questions_per_clip: int = 4, size: int = 64
) -> list[Example]:
    """Simulate `num_clips` clips of `split` and draw `questions_per_clip` questions from each.

    Each question gets its own frame t in [2, num_frames - 5], so the image has its ghosts and all
    `MAX_STEPS` future frames exist. The candidate whose (kind, answer) was given least, scaled by the
    size of that kind's vocabulary, goes first: this evens out both the kinds and the answers of a kind.
    """
    if num_frames < GHOSTS + MAX_STEPS + 1:
        raise ValueError(f"num_frames must be >= {GHOSTS + MAX_STEPS + 1} to fit ghosts and futures")
    asked: Counter[str] = Counter()
    given: Counter[tuple[str, str]] = Counter()
    examples: list[Example] = []
    for seed in split_seeds(split, num_clips):
        clip = simulate(seed, num_frames, size)
        rng = np.random.default_rng([seed, 1])  # independent of the stream simulate() draws from
        pool: dict[int, list[QA]] = {}
        for _ in range(questions_per_clip):
            t = int(rng.integers(GHOSTS, num_frames - MAX_STEPS))
            if t not in pool:
                pool[t] = questions(clip, t, rng)
            candidates = pool[t]
            if not candidates:
                continue
            qa = min(candidates, key=lambda q: (given[q.kind, q.answer] * len(ANSWER_VOCAB[q.kind]), asked[q.kind]))
            candidates.remove(qa)
            asked[qa.kind] += 1
            given[qa.kind, qa.answer] += 1
            future = clip.frames[t + 1 : t + 1 + MAX_STEPS]
            examples.append(Example(seed, t, clip.frames[t], future, **asdict(qa)))
    return examples
