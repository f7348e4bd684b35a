"""Paired comparisons of models (or modes) asked the same ToyWorld test questions: the difference in accuracy with
its 95% interval.

Every model answers the same questions, so the interval is the paired one: the standard error of the mean of the
per-question differences (each -1, 0 or 1). It is narrower than two independent binomial intervals would give,
because the questions that every model gets right (or wrong) cancel out.
"""

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Difference", "paired_difference", "subset"]

Z_95 = 1.959963984540054  # the standard normal's two-sided 95% quantile


@dataclass(frozen=True)
class Difference:
    """Accuracy of b minus accuracy of a over `questions` shared questions, with its 95% interval."""

    difference: float
    low: float
    high: float
    questions: int

    def __str__(self) -> str:
        return f"{100 * self.difference:+.1f} [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"


def paired_difference(a: list[bool], b: list[bool]) -> Difference:
    """b's accuracy minus a's on the same questions, in order, with the normal (Wald) 95% interval of the mean
    per-question difference (clipped to the possible -1..1)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"a paired comparison needs the same questions on both sides, not {len(a)} and {len(b)}")
    differences = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    mean = float(differences.mean())
    spread = float(differences.std(ddof=1)) if len(differences) > 1 else 0.0
    half = Z_95 * spread / math.sqrt(len(differences))
    return Difference(mean, max(mean - half, -1.0), min(mean + half, 1.0), len(differences))


def subset(hits: list[bool], labels: list[str], wanted: str) -> list[bool]:
    """The answers to the questions whose family or kind (`labels`) is `wanted`; "all" keeps every one."""
    return [hit for hit, label in zip(hits, labels, strict=True) if wanted in ("all", label)]
