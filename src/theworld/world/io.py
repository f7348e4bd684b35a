"""Reading inputs and writing one folder per sample, atomically.

`write_sample` builds `OUTDIR/<name>/` (`<name>.mp4`, `<name>.gif`, `frames/000.png`..., `spec.json`,
`record.json`) in a hidden temporary folder inside OUTDIR and renames it into place, so an interrupted
sample leaves nothing behind.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from theworld.files import write_folder_atomically
from theworld.world.spec import IMAGE_SUFFIXES

__all__ = ["InputError", "read_input", "sanitize_name", "unique_names", "write_sample"]

MAX_NAME_LEN = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class InputError(ValueError):
    """An input image or video that cannot be read; one line with the path and the fix."""


def read_input(path: Path, max_frames: int | None = None) -> np.ndarray:
    """Decode an image (1, H, W, 3) or a video (T, H, W, 3) as uint8; videos keep their last `max_frames`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input {str(path)!r} not found; check input_path")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))[None]
        except (UnidentifiedImageError, OSError) as err:
            raise InputError(f"cannot read image {str(path)!r} ({err}); replace it with a valid image") from None
    import imageio.v3 as iio

    try:
        frames = np.asarray(iio.imread(path, plugin="pyav"))
    except Exception as err:  # PyAV raises many types for broken containers
        raise InputError(
            f"cannot read video {str(path)!r} ({type(err).__name__}: {err}); replace it with a valid mp4"
        ) from None
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise InputError(f"video {str(path)!r} has no frames; replace it with a valid mp4")
    frames = frames[..., :3] if frames.shape[-1] >= 3 else np.repeat(frames[..., :1], 3, axis=-1)
    return frames[-max_frames:] if max_frames else frames


def sanitize_name(name: str) -> str:
    """A folder/file name safe on every OS: [A-Za-z0-9._-], no leading dots, at most 64 characters."""
    name = _UNSAFE.sub("_", name.replace("..", "_")).strip("._-")
    return name[:MAX_NAME_LEN].rstrip("._-") or "sample"


def unique_names(names: list[str]) -> list[str]:
    """Sanitise each name and suffix `_2`, `_3`... so names are unique (case-insensitively) in a batch."""
    taken: set[str] = set()
    out = []
    for raw in names:
        base = sanitize_name(raw)
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base[: MAX_NAME_LEN - len(str(n)) - 1]}_{n}"
        taken.add(name.lower())
        out.append(name)
    return out


def _even(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: replicate the last row/column where a side is odd."""
    _, h, w, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, _even(frames), plugin="pyav", codec="libx264", fps=fps)


def _write_gif(path: Path, frames: np.ndarray, fps: int) -> None:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def write_sample(
    output_dir: Path, name: str, frames: np.ndarray, fps: int, spec: dict[str, Any], record: dict[str, Any]
) -> Path:
    """Write one sample's folder atomically and return its path; an existing folder is replaced."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if name != sanitize_name(name):
        raise ValueError(f"name {name!r} is not sanitised; pass it through unique_names first")

    def fill(folder: Path) -> None:
        frames_dir = folder / "frames"
        frames_dir.mkdir()
        digits = max(3, len(str(len(frames) - 1)))
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(frames_dir / f"{i:0{digits}d}.png")
        _write_mp4(folder / f"{name}.mp4", frames, fps)
        _write_gif(folder / f"{name}.gif", frames, fps)
        _write_json(folder / "spec.json", spec)
        _write_json(folder / "record.json", record)

    return write_folder_atomically(Path(output_dir) / name, fill)
