"""Media a request carries, read with its limits checked first: data: URIs (base64 length before decoding),
file:// URLs under `--allowed-media-path` only (file size before reading), and never http(s): the server fetches
nothing. Images are sized from their header, recordings from soundfile's, videos from the container's, before any
pixel or sample is decoded."""

import base64
import binascii
import io
import tempfile
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, UnidentifiedImageError

from theworld.media import MediaError, load_image, load_video, probe_video
from theworld.omni.audio import resample
from theworld.serve.errors import APIError, too_large
from theworld.serve.limits import (
    check_audio_seconds,
    check_base64,
    check_media_bytes,
    check_pixels,
    check_video_frames,
)
from theworld.serve.settings import LIMITS, ServerSettings

__all__ = ["VIDEO_FRAMES", "open_url", "read_audio", "read_base64", "read_image", "read_video"]

VIDEO_FRAMES = 8  # frames sampled evenly over a video, as `theworld chat --video` samples them


def read_base64(data: str, settings: ServerSettings, param: str) -> bytes:
    check_base64(data, settings, param)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, f"{param}: invalid base64; send the file's bytes base64-encoded", param) from None


def open_url(url: str, kind: str, settings: ServerSettings, param: str) -> BinaryIO:
    """The bytes behind an image_url/video_url (`kind` is "image" or "video"), as a file to read."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    example = f"data:{kind}/{'png' if kind == 'image' else 'mp4'};base64,..."
    article = "an" if kind == "image" else "a"
    if scheme == "data":
        header, comma, payload = url[5:].partition(",")
        mime = header.split(";")[0].lower()
        if not comma or ";base64" not in header.lower():
            raise APIError(400, f"{param}: a data URI must be base64 ({example})", param)
        if not (mime.startswith(f"{kind}/") or (kind == "video" and mime == "image/gif")):
            raise APIError(
                400, f"{param}: got a data URI of type {mime or 'none'}; send {article} {kind} ({example})", param
            )
        return io.BytesIO(read_base64(payload, settings, param))
    if scheme in ("http", "https"):
        raise APIError(
            400, f"{param}: the server fetches no URLs; send the {kind} inline as a data URI ({example})", param
        )
    if scheme == "file":
        return _open_file(url, settings, param)
    raise APIError(400, f"{param}: unsupported URL; send a data URI ({example}) or a file:// URL", param)


def _open_file(url: str, settings: ServerSettings, param: str) -> BinaryIO:
    if settings.allowed_media_path is None:
        raise APIError(
            400, f"{param}: file:// URLs are off; start the server with --allowed-media-path DIR to allow them", param
        )
    root = settings.allowed_media_path.expanduser().resolve()
    path = Path(unquote(urlparse(url).path)).resolve()
    if not path.is_relative_to(root):
        raise APIError(400, f"{param}: {path} is outside --allowed-media-path {root}", param)
    if not path.is_file():
        raise APIError(400, f"{param}: no file at {path}", param)
    check_media_bytes(path.stat().st_size, settings, param)
    return io.BytesIO(path.read_bytes())


def read_image(source: BinaryIO, settings: ServerSettings, param: str) -> Image.Image:
    """An RGB image, its size read from the header and checked before its pixels are decoded."""
    try:
        image = Image.open(source)
    except Image.DecompressionBombError:
        raise too_large("image", "a decompression bomb", LIMITS["pixels"].describe(settings), param) from None
    except (UnidentifiedImageError, OSError):
        raise APIError(400, f"{param}: not an image the server can read; send a PNG or JPEG", param) from None
    check_pixels(*image.size, settings, param)
    try:
        return load_image(image)
    except OSError as error:
        raise APIError(400, f"{param}: cannot decode the image ({error}); send a PNG or JPEG", param) from None


def read_audio(source: BinaryIO, settings: ServerSettings, param: str) -> np.ndarray:
    """16 kHz mono samples of a wav/mp3/flac/ogg recording (soundfile), or of one soundfile cannot read, such as the
    webm/opus or mp4/aac a browser's MediaRecorder makes (PyAV); its length is read before its samples are decoded."""
    import soundfile

    try:
        info = soundfile.info(source)
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        source.seek(0)
        audio, rate = _read_with_av(source, settings, param)
    else:
        try:
            check_audio_seconds(info.frames / info.samplerate, settings, param)
            source.seek(0)
            audio, rate = soundfile.read(source, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, TypeError, ZeroDivisionError):
            raise _unreadable_recording(param) from None
    if len(audio) == 0:
        raise APIError(400, f"{param}: the recording is empty; send one with sound in it", param)
    return resample(audio.mean(axis=1), rate)


def _unreadable_recording(param: str) -> APIError:
    return APIError(400, f"{param}: not a recording the server can read; send WAV, MP3, FLAC, OGG, WebM or MP4", param)


def _read_with_av(source: BinaryIO, settings: ServerSettings, param: str) -> tuple[np.ndarray, int]:
    """(samples (N, channels) float32, rate) through PyAV. MediaRecorder writes no duration in its webm, so the
    length is where the last packet ends: the packets are read, not decoded, until it is checked."""
    import av

    try:
        with av.open(source, mode="r") as container:
            if not container.streams.audio:
                raise _unreadable_recording(param)
            stream = container.streams.audio[0]
            end = max(((packet.pts or 0) + (packet.duration or 0) for packet in container.demux(stream)), default=0)
            check_audio_seconds(float(end * stream.time_base), settings, param)
        source.seek(0)
        with av.open(source, mode="r") as container:
            stream = container.streams.audio[0]
            planar = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
            frames = [planar.resample(frame) for frame in container.decode(stream)] + [planar.resample(None)]
            chunks = [chunk.to_ndarray() for group in frames for chunk in group]
            rate = stream.rate
    except (av.error.FFmpegError, OSError, ValueError, TypeError):
        raise _unreadable_recording(param) from None
    if not chunks:
        return np.zeros((0, 1), np.float32), rate
    return np.concatenate(chunks, axis=1).T, rate


def read_video(source: BinaryIO, settings: ServerSettings, param: str) -> np.ndarray:
    """`VIDEO_FRAMES` frames sampled evenly over a video, (T, H, W, 3) uint8; its frame count and size are read
    from the container and checked before any frame is decoded."""
    with tempfile.NamedTemporaryFile(suffix=".video") as staging:
        staging.write(source.read())
        staging.flush()
        frames, width, height = _probe_video(staging.name, param)
        check_video_frames(frames, settings, param)
        check_pixels(width, height, settings, param)
        try:
            return load_video(staging.name, VIDEO_FRAMES)
        except MediaError:
            raise APIError(400, f"{param}: cannot decode the video; send an MP4, WebM or GIF", param) from None


def _probe_video(path: str, param: str) -> tuple[int, int, int]:
    """(frames, width, height) from the container (`probe_video`): no frame is decoded."""
    import av

    try:
        return probe_video(path)
    except MediaError:
        raise APIError(400, f"{param}: the file has no video stream; send an MP4, WebM or GIF", param) from None
    except (av.error.FFmpegError, OSError, ValueError):
        raise APIError(400, f"{param}: not a video the server can read; send an MP4, WebM or GIF", param) from None
