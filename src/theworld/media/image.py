"""Reading images: one decoder, and the reader chat and the model use."""

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from theworld.media.errors import MediaError

__all__ = ["decode_image", "load_image"]


def decode_image(path: Path) -> Image.Image:
    """The RGB image in a file. A file PIL cannot read raises `MediaError` with PIL's reason alone, for the
    reader that called it to put in a sentence naming the file and the fix."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise MediaError(str(error)) from None


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
        return decode_image(path)
    except MediaError as reason:
        raise MediaError(f"Cannot read image {path}: {reason}. Pass a PNG, JPEG or other image file.") from None
