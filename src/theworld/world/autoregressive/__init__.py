"""Autoregressive world generation (Cosmos-Predict1 style) over discrete video tokens.

- `tokenizer`: `VideoTokenizer`, a per-frame conv encoder/decoder with FSQ codes (diffusers format).
- `model`: `AutoregressiveWorldModel` = tokenizer + a causal Llama over codes + `TokenLayout`.
- `backend`: the `WorldBackend` that `get_backend("toyworld")` returns (the shipped checkpoint).
- `physics_check`: predicted trajectories vs the simulator, against copying the last frame.
- `train`: the CPU recipe for the shipped checkpoint (`python -m theworld.world.autoregressive.train`).
"""

from theworld.world.autoregressive.backend import AutoregressiveBackend, load_backend, shipped_checkpoint
from theworld.world.autoregressive.model import AutoregressiveWorldModel, TokenLayout
from theworld.world.autoregressive.physics_check import TrajectoryReport, trajectory_error
from theworld.world.autoregressive.tokenizer import FSQ, VideoTokenizer

__all__ = [
    "FSQ",
    "AutoregressiveBackend",
    "AutoregressiveWorldModel",
    "TokenLayout",
    "TrajectoryReport",
    "VideoTokenizer",
    "load_backend",
    "shipped_checkpoint",
    "trajectory_error",
]
