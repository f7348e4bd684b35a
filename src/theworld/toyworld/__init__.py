"""Toy world: seeded clips of a small 2D physical world, with captions and static / temporal Q&A.

A cheap, fully controlled stand-in for real video: ground truth for every frame is known, so answers
about the future can be checked exactly. `make_examples` is the entry point for training data.
"""

from .clip import Clip, simulate
from .dataset import Example, make_examples, split_seeds
from .language import ANSWER_VOCAB, QA, caption, questions
from .physics import COLOURS, KINDS, RADII, ShapeState, floor_y, initial_states, step
from .render import render_frame

__all__ = [
    "ANSWER_VOCAB",
    "COLOURS",
    "KINDS",
    "QA",
    "RADII",
    "Clip",
    "Example",
    "ShapeState",
    "caption",
    "floor_y",
    "initial_states",
    "make_examples",
    "questions",
    "render_frame",
    "simulate",
    "split_seeds",
    "step",
]
