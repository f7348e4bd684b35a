"""Toy 2D physics: a few shapes under gravity, bouncing off the walls, floor, ceiling and each other.

Units are pixels and frames. One call to `step` advances one frame, split into `SUBSTEPS` small Euler
steps so that collisions are resolved accurately while shapes still move a few pixels per frame (clearly
visible over 1-4 frames). All shapes collide as circles of their radius. Everything is float64 and
deterministic: the only randomness is in `initial_states`, which takes the generator it should draw from.
"""

from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "COLOURS",
    "CONTACT_MARGIN",
    "KINDS",
    "RADII",
    "ShapeState",
    "floor_y",
    "initial_states",
    "step",
]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (60, 100, 255),
    "yellow": (240, 225, 40),
    "purple": (170, 60, 230),
    "orange": (255, 145, 20),
}
KINDS: tuple[str, ...] = ("ball", "square", "triangle")
RADII: dict[str, float] = {"small": 5.0, "large": 8.0}

GRAVITY = 0.35  # px / frame^2, downwards (+y in image coordinates)
RESTITUTION = 0.9  # < 1 so energy decays slowly, > 0.85 so shapes keep moving over a clip
SUBSTEPS = 8
FLOOR_MARGIN = 4  # rows below the floor line; keeps the floor visible inside the image
CONTACT_MARGIN = 1.0  # px; shapes closer than this (edge to edge) count as touching
REST_SPEED = 0.5  # px / frame; slower floor impacts are resting contact, not a "hit"


@dataclass(frozen=True)
class ShapeState:
    """Ground truth for one shape at one frame; `hit_floor` / `touching` describe the step that led here.

    Events are recorded during the sub-steps because a fast bounce can start and finish between two
    frames, where positions alone would never show the contact.
    """

    kind: str
    colour: str
    size: str
    radius: float
    x: float
    y: float
    vx: float
    vy: float
    hit_floor: bool = False
    touching: tuple[str, ...] = ()

    @property
    def speed(self) -> float:
        return float(np.hypot(self.vx, self.vy))


def floor_y(size: int) -> float:
    """The y coordinate of the floor line; shape bottoms never go below it."""
    return float(size - FLOOR_MARGIN)


def initial_states(rng: np.random.Generator, size: int = 64) -> list[ShapeState]:
    """Draw 1-3 non-overlapping shapes with distinct colours, placed in the air, moving a few px/frame."""
    count = int(rng.integers(1, 4))
    colours = rng.choice(list(COLOURS), size=count, replace=False)
    shapes: list[ShapeState] = []
    for colour in colours:
        kind = str(rng.choice(KINDS))
        size_name = str(rng.choice(list(RADII)))
        r = RADII[size_name]
        for _ in range(1000):
            x = rng.uniform(r, size - r)
            y = rng.uniform(r, floor_y(size) - r - 6.0)
            if all(np.hypot(x - s.x, y - s.y) > r + s.radius + 2.0 for s in shapes):
                break
        else:
            raise RuntimeError(f"could not place {count} shapes in a {size}px world; use size >= 48")
        vx = rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 4.5)
        vy = rng.uniform(-3.0, 2.0)
        shapes.append(ShapeState(kind, str(colour), size_name, r, float(x), float(y), float(vx), float(vy)))
    return shapes


def step(states: list[ShapeState], size: int = 64) -> list[ShapeState]:
    """Advance one frame: gravity, pairwise circle collisions, then wall/floor/ceiling bounces."""
    pos = np.array([[s.x, s.y] for s in states], dtype=np.float64).reshape(-1, 2)
    vel = np.array([[s.vx, s.vy] for s in states], dtype=np.float64).reshape(-1, 2)
    radius = np.array([s.radius for s in states], dtype=np.float64)
    mass = radius**2
    hit_floor = [False] * len(states)
    touching: list[set[str]] = [set() for _ in states]
    bottom, dt = floor_y(size), 1.0 / SUBSTEPS

    for _ in range(SUBSTEPS):
        vel[:, 1] += GRAVITY * dt
        pos += vel * dt
        for i in range(len(states)):
            for j in range(i + 1, len(states)):
                delta = pos[j] - pos[i]
                dist = float(np.hypot(*delta))
                gap = dist - radius[i] - radius[j]
                if gap < CONTACT_MARGIN:
                    touching[i].add(states[j].colour)
                    touching[j].add(states[i].colour)
                if gap >= 0.0:
                    continue
                normal = delta / dist if dist > 1e-9 else np.array([1.0, 0.0])
                inv_i, inv_j = 1.0 / mass[i], 1.0 / mass[j]
                closing = float(np.dot(vel[j] - vel[i], normal))
                if closing < 0.0:
                    impulse = -(1.0 + RESTITUTION) * closing / (inv_i + inv_j)
                    vel[i] -= impulse * inv_i * normal
                    vel[j] += impulse * inv_j * normal
                push = -gap / (inv_i + inv_j)
                pos[i] -= push * inv_i * normal
                pos[j] += push * inv_j * normal
        for i in range(len(states)):
            r = radius[i]
            if pos[i, 0] < r:
                pos[i, 0] = r
                vel[i, 0] = RESTITUTION * abs(vel[i, 0])
            elif pos[i, 0] > size - r:
                pos[i, 0] = size - r
                vel[i, 0] = -RESTITUTION * abs(vel[i, 0])
            if pos[i, 1] < r:
                pos[i, 1] = r
                vel[i, 1] = RESTITUTION * abs(vel[i, 1])
            elif pos[i, 1] > bottom - r:
                pos[i, 1] = bottom - r
                if vel[i, 1] > REST_SPEED:
                    hit_floor[i] = True
                    vel[i, 1] = -RESTITUTION * vel[i, 1]
                elif vel[i, 1] > 0.0:
                    vel[i, 1] = 0.0

    return [
        replace(
            s,
            x=float(pos[i, 0]),
            y=float(pos[i, 1]),
            vx=float(vel[i, 0]),
            vy=float(vel[i, 1]),
            hit_floor=hit_floor[i],
            touching=tuple(sorted(touching[i])),
        )
        for i, s in enumerate(states)
    ]
