"""Reading video: one decoder (PyAV) that keeps only the frames its caller chooses, and the reader chat uses.

Memory follows the frames kept, not the clip's length: frames are decoded one at a time and dropped unless
chosen, so an hour of video costs what its few chosen frames cost. The choice needs the frame count first: the
container's, or where it has none (WebM, GIF) a count of the stream's packets, read without decoding. Should the
decoded count differ from it, the frames are chosen again from the true count, so the result is always what
decoding every frame and then choosing would give.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from theworld.media.errors import MediaError, require_file

__all__ = ["decode_video", "evenly_spaced", "load_video", "probe_video"]

Choice = Callable[[int], Sequence[int]]


def evenly_spaced(count: int, num_frames: int) -> list[int]:
    """`num_frames` indices spread evenly over `count` frames, first and last included (all of them if fewer)."""
    return np.linspace(0, count - 1, num=min(num_frames, count)).round().astype(int).tolist()


def probe_video(path: "str | Path") -> tuple[int, int, int]:
    """(frames, width, height) of the first video stream, from the container: its frame count, or its packets
    counted without decoding them. No video stream raises `MediaError`; PyAV's own errors pass through."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise MediaError("it has no video stream, only " + _stream_kinds(container))
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        return frames, stream.codec_context.width, stream.codec_context.height


def _stream_kinds(container) -> str:
    kinds = sorted({stream.type for stream in container.streams})
    return " and ".join(f"{kind} streams" if kind else "unknown streams" for kind in kinds) or "no streams"


def _decode_chosen(path: Path, indices: list[int]) -> tuple[np.ndarray | None, int]:
    """The frames at `indices` (T, H, W, 3), each written straight into the result as it is decoded, and how many
    frames the stream decoded to. None when no frame was chosen or none decoded."""
    import av

    places: dict[int, list[int]] = {}
    for place, index in enumerate(indices):
        places.setdefault(index, []).append(place)
    chosen = None
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frames in flight on every core: the same frames, sooner, a few frames' memory
        for count, frame in enumerate(container.decode(stream), start=1):
            if count - 1 in places:
                rgb = frame.to_ndarray(format="rgb24")
                if chosen is None:
                    chosen = np.empty((len(indices), *rgb.shape), dtype=np.uint8)
                chosen[places[count - 1]] = rgb
    return chosen, count


def decode_video(path: Path, choose: Choice) -> np.ndarray:
    """The frames `choose(frame_count)` picks from a file's first video stream, in the order (and with the
    repeats) it lists them: (T, H, W, 3) uint8 RGB.

    A file PyAV cannot read, one without a video stream, or one without frames raises `MediaError` with the
    reason alone, for the reader that called it to put in a sentence naming the file and the fix.
    """
    import av

    try:
        expected = probe_video(path)[0]
        chosen, count = _decode_chosen(path, list(choose(expected)))
        if count != expected:  # the container's count was wrong: choose from the frames that are really there
            chosen, _ = _decode_chosen(path, list(choose(count)))
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(f"{type(error).__name__}: {error}") from None
    if count == 0 or chosen is None:
        raise MediaError("it has no video frames")
    return chosen


def load_video(path: "str | Path", num_frames: int = 8) -> np.ndarray:
    """`num_frames` frames sampled evenly over a video file: (T, H, W, 3) uint8. Only those frames are kept in
    memory, however long the clip."""
    path = Path(path)
    require_file(path, "Video")
    try:
        return decode_video(path, lambda count: evenly_spaced(count, num_frames))
    except MediaError as reason:
        raise MediaError(f"Cannot read video {path}: {reason}. Pass an MP4, WebM, GIF or other video file.") from None
