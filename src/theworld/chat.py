"""A multi-turn conversation with TheWorld: text, images, video and speech in, text out, world steps per turn."""

from pathlib import Path

import torch
from PIL import Image
from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

from theworld.media import load_image, load_video
from theworld.modeling.modeling_theworld import TheWorld
from theworld.omni.audio import load_audio

__all__ = ["ChatSession"]


class ChatSession:
    """Keeps the conversation (a Gemma 3 chat-template message list) and what the world model reads of its media.

    A video is shown to the language model as its last frame, while the world model reads the whole clip
    (the dynamics take the clip's last frames as context); a still image is its own context. The world is imagined
    when a reply is generated, after the prompt has been checked, never when media is attached.
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
        # What the world model reads of each image of the conversation: (1, T, 3, H, W), T = 1 for a still image.
        self._world_frames: list[torch.Tensor | None] = []
        self._pending: list[dict] = []

    def attach_image(self, source: "str | Path | Image.Image") -> None:
        """Show an image with the next user message."""
        self._check_sees()
        image = load_image(source)
        self._pending.append({"type": "image", "image": image})
        self._world_frames.append(self._frames([image]))

    def attach_video(self, path: "str | Path", num_frames: int = 8) -> None:
        """Show a video with the next user message: its last frame to the language model, the clip to the world."""
        self._check_sees()
        frames = [Image.fromarray(frame) for frame in load_video(path, num_frames)]
        self._pending.append({"type": "image", "image": frames[-1]})
        self._world_frames.append(self._frames(frames))

    def imagined_world(self) -> torch.Tensor:
        """The latents of the latest image or video and of its imagined future, (1, 1 + k, C, h, w): what the world
        model reads for it (decode them with `model.world_encoder.decode` to draw them)."""
        if not self._world_frames or self._world_frames[-1] is None:
            raise ValueError("There is no imagined world: attach an image or a video to a model with a world model")
        with torch.no_grad():
            return self.model.imagine(self._world_frames[-1], self.num_world_steps)

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
        return bool(self._world_frames)

    @property
    def is_base_model(self) -> bool:
        """A pretrained-only checkpoint continues text; a chat template would only confuse it."""
        return bool(getattr(self.model.config, "theworld_is_base_model", False))

    def reply(self, text: str | None, stream: bool = False, **generation_kwargs) -> str:
        """Add a user message (the attached media, then `text` if any: a spoken question needs none), generate
        the answer, and keep both in the history. A base model gets the conversation so far as plain text to
        continue (completion prompting), and its answer ends with its first line. A message that cannot be
        answered (too long, nothing in it) raises a ValueError and leaves the history as it was."""
        content = [*self._pending, *([{"type": "text", "text": text}] if text else [])]
        if not content:
            raise ValueError("Nothing to answer: give a message, or attach speech, an image or a video")
        messages = [*self.messages, {"role": "user", "content": content}]
        tokenizer = getattr(self.processor, "tokenizer", self.processor)  # text-only checkpoints have no processor
        if self.is_base_model:
            history = "".join(part["text"] for m in messages for part in m["content"] if m["role"] != "system")
            inputs = self.processor(text=history, return_tensors="pt").to(self.model.device)
            stop = _FirstLine(tokenizer, inputs["input_ids"].shape[1])
            generation_kwargs["stopping_criteria"] = StoppingCriteriaList([stop])
        else:
            inputs = self.processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            ).to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            generation_kwargs["num_world_steps"] = self.num_world_steps if self.model.config.enable_world else None
        # Checked before the world model reads a video's clip, and before the message joins the history.
        self.model.check_inputs(
            inputs["input_ids"],
            inputs.get("pixel_values"),
            generation_kwargs.get("num_world_steps"),
            max_new_tokens=generation_kwargs.get("max_new_tokens"),
        )
        if "pixel_values" in inputs:
            generation_kwargs["world_latents"] = self._latents(inputs["pixel_values"])
        streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True) if stream else None
        output = self.model.generate(**inputs, streamer=streamer, **generation_kwargs)
        answer = self.processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        if self.is_base_model:
            answer = answer.split("\n", 1)[0].strip()
        self.messages = [*messages, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
        self._pending = []
        return answer

    def _check_sees(self) -> None:
        if self.is_base_model:
            raise ValueError(
                "This is a base (completion) model: it takes text only; leave out the image or video, "
                "or use an instruction model"
            )

    def _frames(self, images: list[Image.Image]) -> torch.Tensor | None:
        """The clip the world model reads, (1, T, 3, H, W) in [-1, 1]; None when the model has no world."""
        if not self.model.config.enable_world:
            return None
        return self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"].unsqueeze(0)

    def _latents(self, pixel_values: torch.Tensor) -> torch.Tensor | None:
        """World latents for every image of the conversation when a video needs its own; None otherwise (the
        model then imagines each image from `pixel_values`)."""
        clips = [frames for frames in self._world_frames if frames is not None and frames.shape[1] > 1]
        if not clips:
            return None
        return torch.cat(
            [
                self.model.imagine(frames if frames.shape[1] > 1 else pixel_values[i : i + 1], self.num_world_steps)
                for i, frames in enumerate(self._world_frames)
            ]
        )


class _FirstLine(StoppingCriteria):
    """Stops a base model's completion at the end of its first line of text, as llama.cpp's examples stop on a
    newline: past the answer, a base model goes on writing the next "Question: ... Answer: ..." of its prompt."""

    def __init__(self, tokenizer, prompt_length: int):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([("\n" in text.lstrip()) for text in texts], device=input_ids.device)
