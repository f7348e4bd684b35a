"""OpenAI chat messages -> a Gemma 3 conversation the processor's chat template takes, with the media read.

Roles are put in the order the template needs: system and developer messages join one leading system prompt, and
consecutive messages of one role join into one turn. A video is shown to the language model as its last frame,
while the world model reads the clip, as `ChatSession.attach_video` does.
"""

import io
from dataclasses import dataclass, field

from PIL import Image

from theworld.serve.errors import APIError
from theworld.serve.inputs import open_url, read_audio, read_base64, read_image, read_video
from theworld.serve.protocol import AudioPart, ChatMessage, ImagePart, TextPart, VideoPart
from theworld.serve.settings import ServerSettings

__all__ = ["Conversation", "read_conversation"]


@dataclass
class Conversation:
    """The chat-template messages, and per image (in prompt order) its video clip's frames, or None for a still."""

    messages: list[dict]
    clips: list[list[Image.Image] | None] = field(default_factory=list)


def read_conversation(messages: list[ChatMessage], settings: ServerSettings) -> Conversation:
    conversation = Conversation([])
    system: list[str] = []
    for i, message in enumerate(messages):
        param = f"messages[{i}].content"
        parts = _read_parts(message, conversation, settings, param)
        if message.role in ("system", "developer"):
            if any(part["type"] != "text" for part in parts):
                raise APIError(400, f"{param}: a system message takes text only", param)
            system += [part["text"] for part in parts]
            continue
        if message.role == "assistant" and any(part["type"] != "text" for part in parts):
            raise APIError(400, f"{param}: an assistant message takes text only", param)
        turns = conversation.messages
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"] += parts
        else:
            turns.append({"role": message.role, "content": parts})
    turns = conversation.messages
    if not turns or turns[0]["role"] != "user" or turns[-1]["role"] != "user":
        raise APIError(
            400,
            "messages: the conversation must start and end with a user message (after any system prompt)",
            "messages",
        )
    if system:
        turns.insert(0, {"role": "system", "content": [{"type": "text", "text": "\n\n".join(system)}]})
    return conversation


def _read_parts(message: ChatMessage, conversation: Conversation, settings: ServerSettings, param: str) -> list[dict]:
    if message.content is None or isinstance(message.content, str):
        return [{"type": "text", "text": message.content or ""}]
    parts = []
    for j, part in enumerate(message.content):
        where = f"{param}[{j}]"
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            where += ".image_url.url"
            image = read_image(open_url(part.image_url.url, "image", settings, where), settings, where)
            parts.append({"type": "image", "image": image})
            conversation.clips.append(None)
        elif isinstance(part, VideoPart):
            where += ".video_url.url"
            video = read_video(open_url(part.video_url.url, "video", settings, where), settings, where)
            frames = [Image.fromarray(frame) for frame in video]
            parts.append({"type": "image", "image": frames[-1]})
            conversation.clips.append(frames)
        elif isinstance(part, AudioPart):
            where += ".input_audio.data"
            audio = read_audio(io.BytesIO(read_base64(part.input_audio.data, settings, where)), settings, where)
            parts.append({"type": "audio", "audio": audio})
    return parts
