"""Media in and out: images and video read with one error (`MediaError`), frames converted between files'
uint8 and the models' [-1, 1], mp4/GIF/PNG written, and files written atomically.

- `image`, `video`: one decoder each (`decode_image`, `decode_video`) and the readers built on them.
- `frames`: `to_model_range` / `to_uint8`.
- `writers`: `write_mp4`, `write_gif`, `save_strip_and_gif`.
- `files`: `write_atomically`, `write_folder_atomically`.
"""

from theworld.media.errors import MediaError
from theworld.media.files import usual_mode, write_atomically, write_folder_atomically
from theworld.media.frames import to_model_range, to_uint8
from theworld.media.image import decode_image, load_image
from theworld.media.video import decode_video, load_video
from theworld.media.writers import save_strip_and_gif, write_gif, write_mp4

__all__ = [
    "MediaError",
    "decode_image",
    "decode_video",
    "load_image",
    "load_video",
    "save_strip_and_gif",
    "to_model_range",
    "to_uint8",
    "usual_mode",
    "write_atomically",
    "write_folder_atomically",
    "write_gif",
    "write_mp4",
]
