"""Media in and out: images and video read with one error (`MediaError`, and `MediaTooLarge` for files over a
bound), frames converted between files' uint8 and the models' [-1, 1], mp4/GIF/PNG written, and files written
atomically.

- `image`, `video`: one decoder each (`decode_image`, `decode_video`) and the readers built on them; an image over
  `MAX_IMAGE_PIXELS` is refused from its header, transparency is composited onto white, and a video keeps only the
  frames its caller chooses.
- `errors`: `MediaError`, `MediaTooLarge`, and `require_file`, the check every reader makes first.
- `frames`: `to_model_range` / `to_uint8`.
- `writers`: `write_mp4`, `write_gif`, `save_strip_and_gif`.
- `files`: `write_atomically`, `write_folder_atomically`.

Each name imports its module on first use, so catching `MediaError` costs no numpy, PIL or torch.
"""

import lazy_loader

# Each submodule and the names it exports here, imported on first use (lazy_loader, as scikit-image does).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "errors": ["MediaError", "MediaTooLarge", "require_file"],
        "files": ["usual_mode", "write_atomically", "write_folder_atomically"],
        "frames": ["to_model_range", "to_uint8"],
        "image": ["MAX_IMAGE_PIXELS", "decode_image", "load_image"],
        "video": ["decode_video", "load_video", "probe_video"],
        "writers": ["save_strip_and_gif", "write_gif", "write_mp4"],
    },
)
