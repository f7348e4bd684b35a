"""The served model and what runs it: a chat request turned into a `ChatJob` (read, tokenised, counted and checked
against its limits in a request thread), the batcher that answers jobs on the model's thread, the voice and the
ear."""

import asyncio
import copy
import io
import threading
from pathlib import Path

import numpy as np
import torch

from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.names import resolve_model_name
from theworld.serve.batcher import Batcher
from theworld.serve.conversation import Conversation, read_conversation
from theworld.serve.errors import APIError
from theworld.serve.generation import ChatJob, Sampling, run_batch
from theworld.serve.limits import check_choices, check_max_tokens
from theworld.serve.protocol import AudioPart, ChatCompletionRequest
from theworld.serve.settings import ServerSettings
from theworld.serve.world_cache import WorldCache

__all__ = ["Engine", "Prepared"]

MAX_STOP_STRINGS = 4  # as OpenAI allows


class Prepared:
    """A chat job ready for the batcher, with its prompt's token counts for `usage`."""

    def __init__(self, job: ChatJob, prompt_tokens: int, world_tokens: int):
        self.job, self.prompt_tokens, self.world_tokens = job, prompt_tokens, world_tokens


class Engine:
    def __init__(self, model: TheWorld, settings: ServerSettings):
        self.model, self.settings, self.processor = model.eval(), settings, model.processor
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        # Request threads tokenise while the model thread decodes: each gets its own tokenizer (a fast tokenizer
        # must not be used from two threads at once), and request threads take turns with the processor.
        self._decoder = copy.deepcopy(tokenizer)
        self._processor_lock = threading.Lock()
        self.speaker = _load_speaker(model)
        self.world = WorldCache(model) if model.config.enable_world else None
        self.batcher = Batcher(self._run_batch, settings.max_batch_size, settings.batch_wait_ms / 1000, self.context)

    @classmethod
    def load(cls, settings: ServerSettings) -> "Engine":
        return cls(TheWorld.from_pretrained(resolve_model_name(settings.model)), settings)

    @property
    def context(self) -> int:
        return self.model.config.text_config.max_position_embeddings

    @property
    def can_hear(self) -> bool:
        return self.model.config.audio_config is not None and hasattr(self.processor, "feature_extractor")

    # ------------------------------------------------------------------------------------------------ chat
    def prepare(self, request: ChatCompletionRequest, loop: asyncio.AbstractEventLoop) -> Prepared:
        """Check, read and tokenise a chat request (in a request thread, never on the model's)."""
        settings, config = self.settings, self.model.config
        asked = request.max_completion_tokens or request.max_tokens
        self._check(request, asked)
        conversation = read_conversation(request.messages, settings)
        images = len(conversation.clips)
        steps = None
        if images and self.world is not None:
            steps = config.num_world_steps if request.num_world_steps is None else request.num_world_steps
        inputs, clips = self._tokenise(conversation)
        world_tokens = images * ((1 + steps) * self.model.tokens_per_world_step + 2) if steps is not None else 0
        prompt_tokens = inputs["input_ids"].shape[1] + world_tokens
        max_tokens = asked if asked is not None else max(1, min(settings.max_tokens_cap, self.context - prompt_tokens))
        # The library's own checks: world steps with no image, pixel values, the prompt against the context.
        self.model.check_inputs(
            inputs["input_ids"], inputs.get("pixel_values"), request.num_world_steps, max_new_tokens=max_tokens
        )
        job = ChatJob(
            inputs=inputs,
            clips=clips,
            steps=steps,
            sampling=self._sampling(request),
            max_tokens=max_tokens,
            n=request.n,
            stop=request.stop_strings,
            stream=request.stream,
            want_frames=request.return_world_frames,
            want_audio=request.wants_audio,
            loop=loop,
            positions=(inputs["input_ids"].shape[1], world_tokens),
        )
        return Prepared(job, prompt_tokens, world_tokens)

    def _check(self, request: ChatCompletionRequest, asked: int | None) -> None:
        """What can be refused before any medium is read."""
        if asked is not None:
            param = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
            check_max_tokens(asked, self.settings, param)
        check_choices(request.n, self.settings)
        if len(request.stop_strings) > MAX_STOP_STRINGS:
            raise APIError(400, f"stop: at most {MAX_STOP_STRINGS} stop strings", "stop")
        if request.wants_audio and self.speaker is None:
            raise APIError(400, "modalities: this model cannot speak (its checkpoint has no talker/)", "modalities")
        if request.wants_audio and request.audio is None:
            raise APIError(
                400, 'audio: with modalities ["text", "audio"], give audio {"voice", "format": "wav"}', "audio"
            )
        if request.return_world_frames and self.world is None:
            raise APIError(400, "return_world_frames: this model has no world model", "return_world_frames")
        if request.num_world_steps is not None:
            self.model.check_world_steps(request.num_world_steps)
        parts = [part for m in request.messages if isinstance(m.content, list) for part in m.content]
        if not self.can_hear and any(isinstance(part, AudioPart) for part in parts):
            raise APIError(400, "input_audio: this model has no audio encoder, so it cannot hear", "messages")

    def _tokenise(self, conversation: Conversation) -> tuple[dict, list[torch.Tensor | None]]:
        """The conversation's inputs (a batch of one), and each video's clip as the world model reads it. The roles
        are in the template's order already (`read_conversation`)."""
        with self._processor_lock:
            inputs = self.processor.apply_chat_template(
                conversation.messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            )
            image_processor = self.processor.image_processor
            clips = [
                None if frames is None else image_processor(images=frames, return_tensors="pt")["pixel_values"]
                for frames in conversation.clips
            ]
        inputs = dict(inputs)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return inputs, clips

    def _sampling(self, request: ChatCompletionRequest) -> Sampling:
        """Greedy at temperature 0; without a temperature, the checkpoint's own generation config decides."""
        if request.temperature is not None:
            sample = request.temperature > 0
        else:
            sample = request.top_p is not None or bool(self.model.generation_config.do_sample)
        if not sample:
            return Sampling(False)
        return Sampling(True, request.temperature, request.top_p, request.seed)

    def _run_batch(self, jobs: list[ChatJob]) -> None:
        run_batch(self.model, jobs, self.world, self._decode, self.speak_wav)

    def _decode(self, ids: list[int]) -> str:
        return self._decoder.decode(ids, skip_special_tokens=True)

    # ----------------------------------------------------------------------------------------- voice, ear
    def speak(self, text: str) -> np.ndarray:
        """16 kHz samples of `text` in the checkpoint's voice (model thread only)."""
        if self.speaker is None:
            raise APIError(400, "this model cannot speak (its checkpoint has no talker/)", "model")
        return self.speaker.speak(text) if text.strip() else np.zeros(0, dtype=np.float32)

    def speak_wav(self, text: str) -> bytes:
        return wav_bytes(self.speak(text))

    @torch.no_grad()
    def transcribe(self, audio: np.ndarray) -> str:
        """The ear's greedy CTC reading of a recording (model thread only): it hears words far more exactly than
        the language model asked to repeat them (docs/speech.md)."""
        from theworld.evaluation.speech import ctc_transcribe
        from theworld.evaluation.speech_data import mel_features

        if not self.can_hear:
            raise APIError(400, "this model has no audio encoder, so it cannot transcribe", "model")
        tokenizer = self.processor.tokenizer
        return ctc_transcribe(self.model, tokenizer, mel_features(self.processor, [audio]))[0].strip()


def wav_bytes(samples: np.ndarray, sampling_rate: int = 16_000) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(samples, -1.0, 1.0), sampling_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def _load_speaker(model: TheWorld):
    """The checkpoint's voice, or None where it has none."""
    from theworld.omni.talker import Speaker

    try:
        return Speaker.from_pretrained(Path(model.name_or_path))
    except FileNotFoundError:
        return None
