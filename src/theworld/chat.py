"""A multi-turn conversation with TheWorld: text, images, video and speech in, text out, world steps per turn."""

from pathlib import Path

import torch
from PIL import Image
from transformers import TextStreamer

from theworld.media import load_image, load_video
from theworld.modeling.modeling_theworld import TheWorld
from theworld.omni.audio import load_audio

__all__ = ["ChatSession"]


class ChatSession:
    """Keeps the conversation (a Gemma 3 chat-template message list) and the world latents of its media.

    A video is shown to the language model as its last frame, while the world model reads the whole clip
    (the dynamics take the clip's last frames as context); a still image is its own context.
    """

    def __init__(self, model: TheWorld, system_prompt: str | None = None, num_world_steps: int | None = None):
        self.model = model
        self.processor = model.processor
        self.system_prompt = system_prompt
        self.num_world_steps = model.config.num_world_steps if num_world_steps is None else num_world_steps
        self.clear()

    def clear(self) -> None:
        self.messages: list[dict] = []
        if self.system_prompt:
            self.messages.append({"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        self._world_latents: list[torch.Tensor | None] = []
        self._pending: list[dict] = []

    def attach_image(self, source: "str | Path | Image.Image") -> None:
        """Show an image with the next user message."""
        self._pending.append({"type": "image", "image": load_image(source)})
        self._world_latents.append(None)

    def attach_video(self, path: "str | Path", num_frames: int = 8) -> None:
        """Show a video with the next user message: its last frame to the language model, the clip to the world."""
        frames = [Image.fromarray(frame) for frame in load_video(path, num_frames)]
        self._pending.append({"type": "image", "image": frames[-1]})
        latents = None
        if self.model.config.enable_world:
            clip = self.processor.image_processor(images=frames, return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                latents = self.model.imagine(clip.unsqueeze(0), self.num_world_steps)
        self._world_latents.append(latents)

    @property
    def can_hear(self) -> bool:
        return self.model.config.audio_config is not None and hasattr(self.processor, "feature_extractor")

    def attach_audio(self, source: "str | Path") -> None:
        """Add a recording (wav/flac/ogg, any rate) to the next user message: a spoken question, or speech to
        talk about."""
        if not self.can_hear:
            raise ValueError(
                "This model has no audio encoder, so it cannot take speech; use a model trained with "
                "`theworld train hearing`, such as the default theworld-tiny"
            )
        self._pending.append({"type": "audio", "audio": load_audio(source)})

    @property
    def has_media(self) -> bool:
        return bool(self._world_latents)

    @property
    def is_base_model(self) -> bool:
        """A pretrained-only checkpoint continues text; a chat template would only confuse it."""
        return bool(getattr(self.model.config, "theworld_is_base_model", False))

    def reply(self, text: str | None, stream: bool = False, **generation_kwargs) -> str:
        """Add a user message (the attached media, then `text` if any: a spoken question needs none), generate
        the answer, and keep both in the history. A base model gets the conversation so far as plain text to
        continue (completion prompting)."""
        content = [*self._pending, *([{"type": "text", "text": text}] if text else [])]
        if not content:
            raise ValueError("Nothing to answer: give a message, or attach speech, an image or a video")
        self.messages.append({"role": "user", "content": content})
        self._pending = []
        if self.is_base_model:
            if self.has_media or any(part["type"] == "audio" for part in content):
                raise ValueError("This is a base (completion) model: it takes text only; use an instruction model")
            history = "".join(part["text"] for m in self.messages for part in m["content"] if m["role"] != "system")
            inputs = self.processor(text=history, return_tensors="pt").to(self.model.device)
        else:
            inputs = self.processor.apply_chat_template(
                self.messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            ).to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            generation_kwargs["num_world_steps"] = self.num_world_steps if self.model.config.enable_world else None
            generation_kwargs["world_latents"] = self._latents(inputs["pixel_values"])
        tokenizer = getattr(self.processor, "tokenizer", self.processor)  # text-only checkpoints have no processor
        streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True) if stream else None
        output = self.model.generate(**inputs, streamer=streamer, **generation_kwargs)
        answer = self.processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        self.messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        return answer

    def _latents(self, pixel_values: torch.Tensor) -> torch.Tensor | None:
        """World latents for every image of the conversation, when a video needs its own; None otherwise."""
        if all(latents is None for latents in self._world_latents) or not self.model.config.enable_world:
            return None
        filled = [
            latents if latents is not None else self.model.imagine(pixel_values[i : i + 1], self.num_world_steps)
            for i, latents in enumerate(self._world_latents)
        ]
        return torch.cat(filled)
