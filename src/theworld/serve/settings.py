"""What `theworld serve` serves and every limit it enforces, in one place, each with the flag that raises it.

This module imports pydantic only, so the command's `--help` stays instant.
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["LIMITS", "MB", "Limit", "ServerSettings"]

MB = 1024 * 1024


class ServerSettings(BaseModel):
    """The server's settings: `theworld serve` builds them from its flags; `create_app` takes them."""

    model: str = Field("theworld-tiny", description="The chat model: checkpoint folder, Hub id, or 'theworld-tiny'.")
    world_model: str = Field("toyworld", description="The world-generation model of the video jobs.")
    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 exposes the server to the network.")
    port: int = Field(8000, ge=0, le=65535)
    api_key: str | None = Field(None, description="Clients must send `Authorization: Bearer KEY` (all but /health).")
    max_batch_size: int = Field(16, ge=1, description="Chat requests answered by one `generate`.")
    batch_wait_ms: float = Field(5.0, ge=0, description="How long a batch waits for more requests once one came.")
    allowed_media_path: Path | None = Field(None, description="file:// media may be read from under this folder.")
    max_request_mb: float = Field(32.0, gt=0, description="Largest request body.")
    max_media_mb: float = Field(16.0, gt=0, description="Largest image, audio or video in a request, decoded.")
    max_image_pixels: int = Field(4096 * 4096, ge=1, description="Largest image or video frame, width x height.")
    # Gemma 3n's feature extractor, which the processor uses, reads at most 30 s: a longer limit would cut recordings.
    max_audio_seconds: float = Field(30.0, gt=0, le=30, description="Longest recording (at most 30 s).")
    max_video_frames: int = Field(1024, ge=1, description="Most frames in a video.")
    max_video_jobs: int = Field(64, ge=1, description="Video jobs kept (queued, running or done) until deleted.")
    max_tokens_cap: int = Field(1024, ge=1, description="Largest max_tokens a request may ask for.")
    max_choices: int = Field(8, ge=1, description="Largest n a request may ask for.")
    max_speech_chars: int = Field(4096, ge=1, description="Longest text /v1/audio/speech speaks.")
    quantize: Literal["int8", "q8_0"] | None = Field(None, description="Smaller weights for faster CPU decoding.")
    compile: bool = Field(False, description="torch.compile the language model's layers.")
    device: str = Field("cpu", description="Where the model runs: cpu, or an accelerator (cuda, cuda:1).")
    offload_world_model: bool = Field(
        False, description="Keep a Cosmos predictor on the CPU between imaginings (with an accelerator device)."
    )

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * MB)

    @property
    def max_media_bytes(self) -> int:
        return int(self.max_media_mb * MB)


class Limit(BaseModel):
    """A limit as a refusal names it: what it bounds, the setting that holds it, and the flag that raises it."""

    what: str
    setting: str
    flag: str
    unit: str = ""

    def value(self, settings: ServerSettings) -> float:
        return getattr(settings, self.setting)

    def describe(self, settings: ServerSettings) -> str:
        """'the limit is 16 MB (--max-media-mb)', for the end of a refusal."""
        value = self.value(settings)
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        return (
            f"the limit is {shown}{' ' + self.unit if self.unit else ''}; start the server with {self.flag} to raise it"
        )


LIMITS = {
    "request": Limit(what="request body", setting="max_request_mb", flag="--max-request-mb", unit="MB"),
    "media": Limit(what="image, audio or video", setting="max_media_mb", flag="--max-media-mb", unit="MB"),
    "pixels": Limit(what="image pixels", setting="max_image_pixels", flag="--max-image-pixels", unit="pixels"),
    "audio": Limit(what="audio length", setting="max_audio_seconds", flag="--max-audio-seconds", unit="seconds"),
    "frames": Limit(what="video frames", setting="max_video_frames", flag="--max-video-frames", unit="frames"),
    "jobs": Limit(what="video jobs", setting="max_video_jobs", flag="--max-video-jobs", unit="jobs"),
    "tokens": Limit(what="max_tokens", setting="max_tokens_cap", flag="--max-tokens-cap", unit="tokens"),
    "choices": Limit(what="n", setting="max_choices", flag="--max-choices"),
    "speech": Limit(what="speech input", setting="max_speech_chars", flag="--max-speech-chars", unit="characters"),
}
