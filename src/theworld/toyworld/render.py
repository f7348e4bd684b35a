"""Draw toy-world states as RGB frames, with faded "ghost" copies of the previous positions.

The downstream model answers questions about the future from a single image, so each frame must show
velocity: the shape's positions one and two frames ago are drawn beneath it, blended towards the
background, like a motion trail. Shapes are drawn with numpy masks over pixel centres (pixel (row, col)
covers [col, col+1) x [row, row+1)), which is exact and deterministic.
"""

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .physics import COLOURS, ShapeState, floor_y

__all__ = ["BACKGROUND", "FLOOR_COLOUR", "TRAIL_ALPHAS", "render_frame"]

BACKGROUND = np.array([18, 18, 24], dtype=np.float64)
FLOOR_COLOUR = np.array([140, 140, 140], dtype=np.float64)
TRAIL_ALPHAS: tuple[float, ...] = (0.25, 0.5)  # oldest to newest ghost; the current shape is 1.0


@lru_cache(maxsize=8)
def _pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    centres = np.arange(size, dtype=np.float64) + 0.5
    return centres[None, :], centres[:, None]


def _mask(shape: ShapeState, size: int) -> np.ndarray:
    """Pixels covered by `shape`: a disc, an axis-aligned square or an upward triangle, half-width r."""
    px, py = _pixel_centres(size)
    dx, dy, r = px - shape.x, py - shape.y, shape.radius
    if shape.kind == "ball":
        return dx**2 + dy**2 <= r**2
    if shape.kind == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape.kind == "triangle":  # apex (0, -r), base corners (+-r, r): |dx| <= (dy + r) / 2
        return (dy <= r) & (2.0 * np.abs(dx) <= dy + r)
    raise ValueError(f"unknown shape kind {shape.kind!r}; expected ball, square or triangle")


def render_frame(
    states: Sequence[ShapeState], trail: Sequence[Sequence[ShapeState]] = (), size: int = 64
) -> np.ndarray:
    """Render `states` as a (size, size, 3) uint8 image.

    `trail` holds the states of earlier frames, oldest first (at most `len(TRAIL_ALPHAS)`); each is drawn
    as a ghost matched to the current shapes by colour. All ghosts go beneath all current shapes.
    """
    if len(trail) > len(TRAIL_ALPHAS):
        raise ValueError(f"trail has {len(trail)} frames; pass at most the last {len(TRAIL_ALPHAS)}")
    image = np.empty((size, size, 3), dtype=np.float64)
    image[:] = BACKGROUND
    floor_row = int(floor_y(size))
    image[floor_row, :] = FLOOR_COLOUR
    image[floor_row + 1 :, :] = (BACKGROUND + FLOOR_COLOUR) / 4.0
    alphas = TRAIL_ALPHAS[len(TRAIL_ALPHAS) - len(trail) :] + (1.0,)
    for layer, alpha in zip([*trail, states], alphas, strict=True):
        for shape in layer:
            colour = np.array(COLOURS[shape.colour], dtype=np.float64)
            image[_mask(shape, size)] = BACKGROUND + alpha * (colour - BACKGROUND)
    return np.round(image).astype(np.uint8)
