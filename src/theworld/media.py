"""Reading user media (images for now) with one clear error for anything unreadable."""

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["MediaError", "load_image", "load_video"]


class MediaError(ValueError):
    """A file the user gave cannot be used; the message names the file and what to do."""


def load_image(source: "str | Path | Image.Image | np.ndarray") -> Image.Image:
    """An RGB PIL image from a path, a PIL image, or an HxWx3 uint8 array."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[-1] != 3:
            raise MediaError(f"Expected an HxWx3 image array, got shape {source.shape}")
        return Image.fromarray(source.astype(np.uint8))
    path = Path(source)
    if not path.is_file():
        raise MediaError(f"Image not found: {path}. Check the path.")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise MediaError(f"Cannot read image {path}: {error}. Pass a PNG, JPEG or other image file.") from None


def load_video(path: "str | Path", num_frames: int = 8) -> np.ndarray:
    """`num_frames` frames sampled evenly over a video file (decoded with PyAV): (T, H, W, 3) uint8."""
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"Video not found: {path}. Check the path.")
    try:
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.error.FFmpegError, ValueError, IndexError) as error:
        raise MediaError(f"Cannot read video {path}: {error}. Pass an MP4, WebM, GIF or other video file.") from None
    if not frames:
        raise MediaError(f"Video {path} has no frames. Pass a video with at least one frame.")
    chosen = np.linspace(0, len(frames) - 1, num=min(num_frames, len(frames))).round().astype(int)
    return np.stack([frames[i] for i in chosen])
