"""Frames between the two forms they take: uint8 (..., H, W, 3) as files hold them, float (..., 3, H, W) in
[-1, 1] as the models read them."""

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["to_model_range", "to_uint8"]


def to_model_range(frames: np.ndarray) -> "torch.Tensor":
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1], the range of Gemma 3's pixel values and the VAE."""
    import torch  # here, not at the top: reading a file (and a command's --help) should not wait for torch

    # Converting to float32 in numpy copies the frames, so read-only arrays (decoded media) convert without a warning.
    tensor = torch.from_numpy(np.asarray(frames, dtype=np.float32)).div(127.5).sub(1.0)
    return tensor.movedim(-1, -3)


def to_uint8(frames: "torch.Tensor") -> np.ndarray:
    """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3), for saving frames people look at."""
    return frames.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().movedim(-3, -1).cpu().numpy()
