"""A sample's input frames in, and its folder out, atomically.

`write_sample` builds `OUTDIR/<name>/` (`<name>.mp4`, `<name>.gif`, `frames/000.png`..., `spec.json`,
`record.json`) in a hidden temporary folder inside OUTDIR and renames it into place, so an interrupted
sample leaves nothing behind.
"""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from theworld.media import (
    MediaError,
    MediaTooLarge,
    decode_image,
    decode_video,
    write_folder_atomically,
    write_gif,
    write_mp4,
)
from theworld.world.spec import IMAGE_SUFFIXES

__all__ = ["read_input", "sanitize_name", "unique_names", "write_sample"]

MAX_NAME_LEN = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _looks_like_image(path: Path) -> bool:
    """An image by its name: a suffix world specs treat as one, or any other still-image type (TIFF, HEIC...).
    A GIF is read as a video, as it may move."""
    kind = mimetypes.guess_type(path.name)[0] or ""
    return path.suffix.lower() in IMAGE_SUFFIXES or (kind.startswith("image/") and kind != "image/gif")


def read_input(path: Path, max_frames: int | None = None) -> np.ndarray:
    """A spec's input as uint8 frames: an image (1, H, W, 3) or a video's last `max_frames` (T, H, W, 3).

    Only the frames kept are held in memory, so pass `max_frames` for a clip of unknown length: without it every
    frame is kept.
    """
    path = Path(path)
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "not found"
        raise MediaError(f"input {str(path)!r} {problem}; check input_path")
    is_image = _looks_like_image(path)
    try:
        if is_image:
            return np.asarray(decode_image(path))[None]
        return decode_video(path, lambda count: range(max(0, count - max_frames) if max_frames else 0, count))
    except MediaTooLarge:
        raise
    except MediaError as reason:
        kind, fix = ("image", "a valid PNG or JPEG image") if is_image else ("video", "a valid mp4")
        raise MediaError(f"cannot read {kind} {str(path)!r} ({reason}); replace it with {fix}") from None


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
        write_mp4(folder / f"{name}.mp4", frames, fps)
        write_gif(folder / f"{name}.gif", frames, fps)
        _write_json(folder / "spec.json", spec)
        _write_json(folder / "record.json", record)

    return write_folder_atomically(Path(output_dir) / name, fill)
