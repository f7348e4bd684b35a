"""Speech files in and out: read any wav/flac/ogg as 16 kHz mono, write wav atomically, and synthesise speech
with espeak-ng (how the training data of the tiny speech models is made)."""

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from theworld.media import MediaError, MediaTooLarge, require_file, write_atomically

__all__ = [
    "MAX_AUDIO_SECONDS",
    "SAMPLING_RATE",
    "EspeakVoice",
    "load_audio",
    "resample",
    "save_audio",
    "synthesize_speech",
]

SAMPLING_RATE = 16_000  # what the audio encoder hears and the vocoder speaks
MAX_AUDIO_SECONDS = 30  # the audio encoder's window (Gemma 3n's features): longer audio would be cut, so it is refused


def resample(audio: np.ndarray, from_rate: int, to_rate: int = SAMPLING_RATE) -> np.ndarray:
    import librosa

    if from_rate == to_rate:
        return audio.astype(np.float32)
    return librosa.resample(audio.astype(np.float32), orig_sr=from_rate, target_sr=to_rate).astype(np.float32)


def _too_long(seconds: float, max_seconds: float, path: Path | None = None) -> MediaTooLarge:
    heard = f"is {seconds:.1f} s; the model hears at most {max_seconds:g} s. Trim it"
    if path is None:
        return MediaTooLarge(f"Audio {heard}.")
    return MediaTooLarge(f"Audio {path} {heard} (e.g. `ffmpeg -i {path} -t {max_seconds:g} trimmed.wav`).")


def load_audio(
    source: "str | Path | np.ndarray", sampling_rate: int = SAMPLING_RATE, max_seconds: float = MAX_AUDIO_SECONDS
) -> np.ndarray:
    """Mono float32 samples at `sampling_rate` from a wav/flac/ogg file (read with soundfile) or an array
    already at that rate. Audio longer than `max_seconds` raises `MediaTooLarge`; a file's length is read from
    its header, before its samples are decoded."""
    import soundfile

    if isinstance(source, np.ndarray):
        audio = source.astype(np.float32)
        if audio.ndim != 1:
            raise MediaError(f"Expected mono audio samples (1-D), got shape {audio.shape}")
        if len(audio) > max_seconds * sampling_rate:
            raise _too_long(len(audio) / sampling_rate, max_seconds)
        return audio
    path = Path(source)
    require_file(path, "Audio")
    try:
        header = soundfile.info(str(path))
        if header.frames > max_seconds * header.samplerate:
            raise _too_long(header.frames / header.samplerate, max_seconds, path)
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        message = str(error).strip().splitlines()[0]
        raise MediaError(f"Cannot read audio {path}: {message}. Pass a WAV, FLAC or OGG file.") from None
    if len(audio) == 0:
        raise MediaError(f"Audio {path} is empty. Pass a recording with sound in it.")
    return resample(audio.mean(axis=1), rate, sampling_rate)


def save_audio(path: "str | Path", audio: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> Path:
    """Write a 16-bit PCM wav next to `path` and rename it into place: a crash never leaves half a file."""
    import soundfile

    samples = np.clip(audio, -1.0, 1.0)
    return write_atomically(
        Path(path),
        lambda staging: soundfile.write(staging, samples, sampling_rate, subtype="PCM_16", format="WAV"),
        suffix=".wav",
    )


@dataclass(frozen=True)
class EspeakVoice:
    """One speaker of the synthetic training data: an espeak-ng voice, words per minute, pitch (0-99)."""

    voice: str = "en-us"
    speed: int = 160
    pitch: int = 50


@lru_cache(maxsize=1)
def _espeak() -> str:
    for name in ("espeak-ng", "espeak"):
        if shutil.which(name):
            return name
    raise FileNotFoundError("espeak-ng is not installed; install it (e.g. `apt-get install espeak-ng`) to make speech")


def synthesize_speech(text: str, voice: EspeakVoice = EspeakVoice()) -> np.ndarray:
    """Speak `text` with espeak-ng: 16 kHz mono float32 samples."""
    import soundfile

    command = [_espeak(), "-v", voice.voice, "-s", str(voice.speed), "-p", str(voice.pitch), "--stdout", text]
    result = subprocess.run(command, capture_output=True, check=True, timeout=60)
    with tempfile.SpooledTemporaryFile() as buffer:  # espeak writes a wav with an unknown length to stdout
        buffer.write(result.stdout)
        buffer.seek(0)
        audio, rate = soundfile.read(buffer, dtype="float32")
    return resample(audio, rate)
