"""Save frames people look at: a PNG strip and a GIF of the current frame and the imagined future."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

from theworld.files import write_atomically

__all__ = ["save_strip_and_gif"]


def save_strip_and_gif(frames: np.ndarray, path: "str | Path", scale: int = 4, fps: int = 4) -> tuple[Path, Path]:
    """Write frames (T, H, W, 3) uint8 as `<path>.png` (side by side) and `<path>.gif`, each atomically."""
    base = Path(path)
    base = base.with_suffix("") if base.suffix.lower() in (".png", ".gif") else base
    base.parent.mkdir(parents=True, exist_ok=True)
    big = [
        np.asarray(Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST)) for f in frames
    ]
    separator = np.full((big[0].shape[0], scale, 3), 255, dtype=np.uint8)
    strip = np.concatenate([part for f in big for part in (f, separator)][:-1], axis=1)
    png, gif = base.with_suffix(".png"), base.with_suffix(".gif")
    write_atomically(png, lambda tmp: Image.fromarray(strip).save(tmp, format="PNG"))
    write_atomically(gif, lambda tmp: iio.imwrite(tmp, np.stack(big), extension=".gif", duration=1000 / fps, loop=0))
    return png, gif
