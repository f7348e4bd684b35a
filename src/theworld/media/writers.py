"""Writing frames people watch: an mp4, a GIF, and a PNG strip with its GIF."""

from pathlib import Path

import numpy as np
from PIL import Image

from theworld.media.files import write_atomically

__all__ = ["save_strip_and_gif", "write_gif", "write_mp4"]


def _even(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: replicate the last row/column where a side is odd."""
    _, h, w, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_mp4(path: "str | Path", frames: np.ndarray, fps: int) -> None:
    """Frames (T, H, W, 3) uint8 as an H.264 mp4; odd sides grow by one replicated row or column."""
    import imageio.v3 as iio

    iio.imwrite(path, _even(frames), plugin="pyav", codec="libx264", fps=fps)


def write_gif(path: "str | Path", frames: np.ndarray, fps: int) -> None:
    """Frames (T, H, W, 3) uint8 as a GIF that loops forever."""
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def save_strip_and_gif(frames: np.ndarray, path: "str | Path", scale: int = 4, fps: int = 4) -> tuple[Path, Path]:
    """Write frames (T, H, W, 3) uint8 as `<path>.png` (side by side) and `<path>.gif`, each atomically."""
    base = Path(path)
    base = base.with_suffix("") if base.suffix.lower() in (".png", ".gif") else base
    base.parent.mkdir(parents=True, exist_ok=True)
    big = np.stack(
        [np.asarray(Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST)) for f in frames]
    )
    separator = np.full((big.shape[1], scale, 3), 255, dtype=np.uint8)
    strip = np.concatenate([part for f in big for part in (f, separator)][:-1], axis=1)
    png, gif = base.with_suffix(".png"), base.with_suffix(".gif")
    write_atomically(png, lambda tmp: Image.fromarray(strip).save(tmp, format="PNG"))
    write_atomically(gif, lambda tmp: write_gif(tmp, big, fps))
    return png, gif
