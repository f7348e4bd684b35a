"""Reading images: one decoder, and the reader chat and the model use.

Transparent pixels are composited onto white (`BACKGROUND`), as image viewers and browsers show them; dropping
the alpha channel instead would show whatever colour the transparent pixels happen to store. An image over
`MAX_IMAGE_PIXELS` is refused from its header, before a byte of it is decoded.
"""

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from theworld.media.errors import MediaError, MediaTooLarge, require_file

__all__ = ["BACKGROUND", "MAX_IMAGE_PIXELS", "decode_image", "load_image", "to_rgb"]

BACKGROUND = (255, 255, 255)
# PIL's decompression-bomb bound (twice its warning threshold): decoded RGB this size is about half a gigabyte.
MAX_IMAGE_PIXELS = 2 * Image.MAX_IMAGE_PIXELS


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as RGB, its transparent parts (alpha, or a palette's or colour key's transparency) on `BACKGROUND`."""
    if not image.has_transparency_data:
        return image.convert("RGB")
    background = Image.new("RGBA", image.size, (*BACKGROUND, 255))
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")


def _too_large(path: Path, pixels: int, size: str = "") -> MediaTooLarge:
    return MediaTooLarge(
        f"Image {path} is {size}{pixels / 1e6:.0f} megapixels; the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. "
        f"Downscale it first, e.g. `magick {path} -resize 4096x4096 smaller.png`."
    )


def decode_image(path: Path) -> Image.Image:
    """The RGB image in a file. A file PIL cannot read raises `MediaError` with PIL's reason alone, for the
    reader that called it to put in a sentence naming the file and the fix; one over `MAX_IMAGE_PIXELS` raises
    `MediaTooLarge`, whose message is whole."""
    try:
        with warnings.catch_warnings():
            # Between PIL's warning threshold and MAX_IMAGE_PIXELS the image is decoded: the warning is only noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:  # reached when a program has lifted PIL's own bound
                    raise _too_large(path, width * height, f"{width}x{height}, ")
                return to_rgb(image)
    except Image.DecompressionBombError as error:
        # PIL refuses the image from its header and names only its pixel count, which is all we can repeat.
        counted = re.search(r"\((\d+) pixels\)", str(error))
        raise _too_large(path, int(counted.group(1)) if counted else MAX_IMAGE_PIXELS + 1) from None
    except (UnidentifiedImageError, OSError) as error:
        raise MediaError(str(error)) from None


def load_image(source: "str | Path | Image.Image | np.ndarray") -> Image.Image:
    """An RGB PIL image from a path, a PIL image, or an HxWx3 uint8 array; transparency is composited onto white."""
    if isinstance(source, Image.Image):
        return to_rgb(source)
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[-1] != 3:
            raise MediaError(f"Expected an HxWx3 image array, got shape {source.shape}")
        return Image.fromarray(source.astype(np.uint8))
    path = Path(source)
    require_file(path, "Image")
    try:
        return decode_image(path)
    except MediaTooLarge:
        raise
    except MediaError as reason:
        raise MediaError(f"Cannot read image {path}: {reason}. Pass a PNG, JPEG or other image file.") from None
