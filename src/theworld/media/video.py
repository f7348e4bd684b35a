"""Reading video: one decoder (PyAV), and the reader chat uses."""

from pathlib import Path

import numpy as np

from theworld.media.errors import MediaError

__all__ = ["decode_video", "load_video"]


def decode_video(path: Path) -> np.ndarray:
    """Every frame of a file's first video stream: (T, H, W, 3) uint8 RGB.

    A file PyAV cannot read, or one without video frames, raises `MediaError` with the reason alone, for the
    reader that called it to put in a sentence naming the file and the fix.
    """
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.video
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(streams[0])] if streams else []
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(f"{type(error).__name__}: {error}") from None
    if not frames:
        raise MediaError("it has no video frames")
    return np.stack(frames)


def load_video(path: "str | Path", num_frames: int = 8) -> np.ndarray:
    """`num_frames` frames sampled evenly over a video file: (T, H, W, 3) uint8."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"Video not found: {path}. Check the path.")
    try:
        frames = decode_video(path)
    except MediaError as reason:
        raise MediaError(f"Cannot read video {path}: {reason}. Pass an MP4, WebM, GIF or other video file.") from None
    chosen = np.linspace(0, len(frames) - 1, num=min(num_frames, len(frames))).round().astype(int)
    return frames[chosen]
