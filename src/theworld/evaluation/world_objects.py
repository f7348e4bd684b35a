"""Do generated frames keep each object's colour and kind? Read against the simulator's truth, two ways.

- The object reader (`ObjectReading`): TheWorld-tiny's world encoder and object reader, trained on ToyWorld to
  read each palette colour's object (present, kind...) from a frame's latents. An object is kept in a frame when
  the reader finds it present in its colour's slot and reads its kind.
- A pixel detector (`read_kind`): the object's pixels by palette colour (as `world_physics.locate` finds them),
  its kind from how much of their bounding box they fill (a square all of it, a ball about pi/4, a triangle half).
  It needs sharp edges: blurred frames lose it first.

Both read the simulator's own frames almost perfectly (their floor). `psnr` compares frames with the simulator's;
`prompt_following` measures text2world against its prompt. `benchmarks/world_quality.py` runs them all on the
autoregressive world model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from theworld.evaluation.world_physics import MATCH_DISTANCE, MIN_PIXELS
from theworld.media import to_model_range
from theworld.toyworld import COLOURS, ShapeState, caption, simulate, split_seeds

__all__ = ["ObjectReading", "objects_kept", "prompt_following", "prompt_following_by_shapes", "psnr", "read_kind"]

# Fill ratio of the bounding box between the kinds' ideal values: triangle 0.5, ball 0.785, square 1.0
TRIANGLE_BELOW, SQUARE_ABOVE = 0.64, 0.9


def read_kind(frame: np.ndarray, colour: str) -> str | None:
    """The kind of the `colour` object in a (H, W, 3) uint8 frame, or None when no such object is there."""
    target = np.array(COLOURS[colour], dtype=np.float64)
    mask = np.linalg.norm(frame.astype(np.float64) - target, axis=-1) < MATCH_DISTANCE
    rows, cols = np.nonzero(mask)
    if len(rows) < MIN_PIXELS:
        return None
    fill = len(rows) / ((rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1))
    return "triangle" if fill < TRIANGLE_BELOW else "square" if fill > SQUARE_ABOVE else "ball"


def objects_kept(frames: np.ndarray, states: Sequence[Sequence[ShapeState]]) -> tuple[int, int]:
    """Pixel detector: (kept, total) over every object of every frame, found in its colour and read as its kind."""
    kept = total = 0
    for frame, objects in zip(frames, states, strict=True):
        for state in objects:
            total += 1
            kept += read_kind(frame, state.colour) == state.kind
    return kept, total


def psnr(frames: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all frames (uint8 range)."""
    mse = np.mean((frames.astype(np.float64) - truth.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


class ObjectReading:
    """TheWorld-tiny's (or `model`'s) world encoder and object reader, reading objects' kinds in frames."""

    def __init__(self, model: str | None = None):
        from theworld.modeling import TheWorld
        from theworld.modeling.names import DEFAULT_MODEL

        world = TheWorld.from_pretrained(str(model or DEFAULT_MODEL)).eval()
        self.names, self.kinds = world.config.world_objects["names"], world.config.world_objects["kinds"]
        self.encoder = next(m for m in world.modules() if type(m).__name__ == "WorldEncoder")
        self.reader = next(m for m in world.modules() if type(m).__name__ == "ObjectReader")

    def kept(self, frames: np.ndarray, states: Sequence[Sequence[ShapeState]]) -> tuple[int, int]:
        """(kept, total) over every object of every frame: read present in its colour's slot, and of its kind."""
        per_frame = self.kept_per_frame(frames, states)
        return sum(k for k, _ in per_frame), sum(t for _, t in per_frame)

    @torch.no_grad()
    def kept_per_frame(self, frames: np.ndarray, states: Sequence[Sequence[ShapeState]]) -> list[tuple[int, int]]:
        """`kept` frame by frame (the frames are read together, as a video)."""
        read = self.reader.read(self.encoder.encode(to_model_range(frames)[None])[0])
        counts = []
        for frame, objects in enumerate(states):
            kept = 0
            for state in objects:
                slot = read[frame, self.names.index(state.colour)]
                kind = self.kinds[int(slot[4 : 4 + len(self.kinds)].argmax())]
                kept += bool(slot[0] > 0) and kind == state.kind
            counts.append((kept, len(objects)))
        return counts


def prompt_following(
    model, reading: ObjectReading, clips: int = 16, frames: int = 2, seed: int = 0, split: str = "test", **decoding
) -> dict:
    """Text2world from held-out captions ("a large red ball moving right, ..."): the share of named objects read, in
    their colour and kind, in each of the first `frames` generated frames; and the same objects' share when the
    prompt is left out (what the model makes anyway: a random scene from a text-to-frame model, else whatever the
    transformer draws from nothing). The captions are `split`'s clips ("val" to choose between models, "test" to
    report). `decoding` goes to `model.predict` (top_p, temperature, guidance...)."""
    counts = prompt_following_by_shapes(model, reading, clips, frames, seed, split, **decoding)
    return {key: float(np.divide(*sum(by.values()).sum(0))) for key, by in counts.items()}


def prompt_following_by_shapes(
    model, reading: ObjectReading, clips: int = 16, frames: int = 2, seed: int = 0, split: str = "test", **decoding
) -> dict[str, dict[int, np.ndarray]]:
    """`prompt_following`'s counts, split by how many shapes the caption names and by frame: {"prompt" | "no
    prompt": {shapes named: (frames, 2) array of (objects read, objects named) in each generated frame}}."""
    named: dict[str, dict[int, np.ndarray]] = {"prompt": {}, "no prompt": {}}
    for clip_seed in split_seeds(split, clips):
        clip = simulate(clip_seed, 1)
        prompt, shapes = caption(clip, 0), len(clip.states[0])
        for key, text in (("prompt", prompt), ("no prompt", None)):
            made = model.predict(None, frames, prompt=text, seed=seed, **decoding)
            counts = np.array(reading.kept_per_frame(made, [clip.states[0]] * frames))
            named[key][shapes] = named[key].get(shapes, 0) + counts
    return named
