"""Requests and responses in OpenAI's shapes (pydantic), apart from the code that serves them.

TheWorld's own chat fields, which the openai client sends through `extra_body`: `num_world_steps` (future frames to
imagine for each image) and `return_world_frames` (the imagined frames, as PNG data URIs, in the response's `world`).
Unknown fields are ignored, as OpenAI-compatible servers do.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AudioOut",
    "AudioPart",
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "ChunkChoice",
    "Delta",
    "ImagePart",
    "ModelCard",
    "ModelList",
    "PromptTokensDetails",
    "ResponseMessage",
    "SpeechRequest",
    "TextPart",
    "Transcription",
    "Usage",
    "VideoPart",
    "WorldFrames",
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ------------------------------------------------------------------------------------------ chat: request
class TextPart(_Request):
    type: Literal["text"]
    text: str


class MediaURL(_Request):
    url: str = Field(description="a data: URI, or file:// under --allowed-media-path")


class ImagePart(_Request):
    type: Literal["image_url"]
    image_url: MediaURL


class InputAudio(_Request):
    data: str = Field(description="base64 of the recording")
    format: Literal["wav", "mp3", "flac", "ogg", "webm", "mp4"]


class AudioPart(_Request):
    type: Literal["input_audio"]
    input_audio: InputAudio


class VideoPart(_Request):
    type: Literal["video_url"]
    video_url: MediaURL


ContentPart = Annotated[TextPart | ImagePart | AudioPart | VideoPart, Field(discriminator="type")]


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class StreamOptions(_Request):
    include_usage: bool = False


class AudioRequest(_Request):
    voice: str = Field(description="accepted for compatibility: the model has one voice")
    format: Literal["wav"] = "wav"


class ChatCompletionRequest(_Request):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    audio: AudioRequest | None = None
    num_world_steps: int | None = Field(None, ge=0)
    return_world_frames: bool = False

    @property
    def stop_strings(self) -> list[str]:
        strings = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in strings if s]

    @property
    def wants_audio(self) -> bool:
        return "audio" in (self.modalities or [])


# ----------------------------------------------------------------------------------------- chat: response
class AudioOut(BaseModel):
    id: str
    data: str = Field(description="base64 of a 16 kHz wav")
    expires_at: int
    transcript: str


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    audio: AudioOut | None = None


class ChatChoice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class PromptTokensDetails(BaseModel):
    world_tokens: int = 0
    cached_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class WorldFrames(BaseModel):
    """One image's world: its frame and the `num_world_steps` imagined after it, as the world encoder draws them."""

    image: int = Field(description="which image of the conversation, counting from 0")
    frames: list[str] = Field(description="PNG data URIs")


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    world: list[WorldFrames] | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    audio: AudioOut | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    world: list[WorldFrames] | None = None


# ------------------------------------------------------------------------------------------------- audio
class SpeechRequest(_Request):
    model: str
    input: str = Field(min_length=1)
    voice: str = Field(description="accepted for compatibility: the model has one voice")
    response_format: Literal["wav", "pcm"] = "wav"
    stream: bool = False
    stream_format: Literal["audio"] | None = None


class Transcription(BaseModel):
    text: str


# ------------------------------------------------------------------------------------------------ models
class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "theworld"
    input_modalities: list[str]
    output_modalities: list[str]
    # TheWorld's own, for clients that offer the world steps (the page's slider): the default and the most.
    num_world_steps: int | None = None
    max_world_steps: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
