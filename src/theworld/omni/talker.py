"""The talker: text in, speech codes out. A small Llama (transformers) reads the answer's text tokens, then
writes the `MelCodec` codes of its speech, frame by frame, codebook by codebook:

    text ... <speech> c[0,0] c[0,1] .. c[0,Q-1] c[1,0] ... <end_of_speech>

Each codebook has its own id range, and `CodebookOrder` keeps generation on the right one, so any decoding mode
of `generate` (greedy, sampling, beams) yields well-formed codes. `Speaker` joins the talker, the text tokenizer
and the codec into text -> 16 kHz samples.
"""

import contextlib
import io
from pathlib import Path

import numpy as np
import torch
from huggingface_hub.dataclasses import strict
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LogitsProcessor,
    LogitsProcessorList,
)

from theworld.omni.codec import MelCodec

__all__ = ["SPEAKER_FOLDERS", "CodebookOrder", "Speaker", "Talker", "TalkerConfig"]

SPEAKER_FOLDERS = ("talker", "codec")  # where a checkpoint keeps its voice


@strict
class TalkerConfig(LlamaConfig):
    r"""
    A Llama over text tokens followed by codec codes.

    text_vocab_size (`int`): ids below this are the text tokenizer's; then `<speech>`, `<end_of_speech>`, and
        `num_quantizers * codebook_size` code ids, codebook by codebook.
    num_quantizers / codebook_size (`int`): the codec's RVQ shape.
    """

    model_type = "theworld_talker"

    text_vocab_size: int = 0
    num_quantizers: int = 4
    codebook_size: int = 256

    def __post_init__(self, **kwargs):
        self.vocab_size = self.text_vocab_size + 2 + self.num_quantizers * self.codebook_size
        super().__post_init__(**kwargs)

    @property
    def speech_start_id(self) -> int:
        return self.text_vocab_size

    @property
    def speech_end_id(self) -> int:
        return self.text_vocab_size + 1

    @property
    def first_code_id(self) -> int:
        return self.text_vocab_size + 2


class CodebookOrder(LogitsProcessor):
    """Allow, at each generated position, only the ids of the codebook due there (and `<end_of_speech>` between
    frames)."""

    def __init__(self, config: TalkerConfig, prompt_length: int):
        self.config, self.prompt_length = config, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        config = self.config
        quantizer = (input_ids.shape[1] - self.prompt_length) % config.num_quantizers
        allowed = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        start = config.first_code_id + quantizer * config.codebook_size
        allowed[start : start + config.codebook_size] = True
        if quantizer == 0:
            allowed[config.speech_end_id] = True
        return scores.masked_fill(~allowed, float("-inf"))


class Talker(LlamaForCausalLM):
    config_class = TalkerConfig

    def speech_sequence(self, text_ids: list[int], codes: torch.LongTensor | None = None) -> list[int]:
        """The token sequence of `text_ids` and their speech `codes` (T, Q); without codes, the prompt."""
        config = self.config
        sequence = [*text_ids, config.speech_start_id]
        if codes is not None:
            sequence += (codes + self._code_offsets()).flatten().tolist() + [config.speech_end_id]
        return sequence

    def _code_offsets(self) -> torch.LongTensor:
        """The first id of each codebook's range."""
        config = self.config
        return config.first_code_id + torch.arange(config.num_quantizers) * config.codebook_size

    @torch.no_grad()
    def generate_codes(self, text_ids: list[int], max_frames: int = 250, **generation_kwargs) -> torch.LongTensor:
        """Speech codes (T, Q) for `text_ids`; generation kwargs as in `generate` (greedy by default)."""
        config = self.config
        prompt = torch.tensor([self.speech_sequence(text_ids)], device=self.device)
        output = self.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=max_frames * config.num_quantizers,
            logits_processor=LogitsProcessorList([CodebookOrder(config, prompt.shape[1])]),
            eos_token_id=config.speech_end_id,
            pad_token_id=config.speech_end_id,
            **generation_kwargs,
        )[0, prompt.shape[1] :]
        output = output[output != config.speech_end_id]
        frames = len(output) // config.num_quantizers
        codes = output[: frames * config.num_quantizers].view(frames, config.num_quantizers)
        return codes.cpu() - self._code_offsets()


class Speaker:
    """Text -> speech: the tokenizer, the talker and the codec saved in one folder (`talker/`, `codec/`)."""

    def __init__(self, talker: Talker, tokenizer, codec: MelCodec):
        self.talker, self.tokenizer, self.codec = talker.eval(), tokenizer, codec.eval()

    @property
    def sampling_rate(self) -> int:
        return self.codec.sampling_rate

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text.strip().lower(), add_special_tokens=False).input_ids

    def speak(self, text: str, **generation_kwargs) -> np.ndarray:
        """16 kHz float32 samples of `text` spoken."""
        return self.codec.decode(self.talker.generate_codes(self.text_ids(text), **generation_kwargs))

    def save_pretrained(self, folder: "str | Path") -> None:
        folder = Path(folder)
        self.talker.save_pretrained(folder / "talker")
        self.tokenizer.save_pretrained(folder / "talker")
        self.codec.save_pretrained(folder / "codec")

    @classmethod
    def from_pretrained(cls, folder: "str | Path") -> "Speaker":
        folder = Path(folder)
        if not (folder / "talker" / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder} has no talker (talker/config.json), so it cannot speak; use a checkpoint trained with "
                "`theworld train speaking`, such as the default theworld-tiny"
            )
        if not (folder / "codec" / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"{folder} has no codec weights (codec/model.safetensors); voices load from safetensors only, since "
                "unpickling can run code"
            )
        talker = Talker.from_pretrained(folder / "talker", use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(folder / "talker")
        with contextlib.redirect_stdout(
            io.StringIO()
        ):  # huggingface_hub's mixin prints on local loads; stdout is the answer
            codec = MelCodec.from_pretrained(folder / "codec")
        return cls(talker, tokenizer, codec)


# Defining the talker registers it, so a checkpoint's talker/ folder loads through the Auto classes.
AutoConfig.register("theworld_talker", TalkerConfig)
AutoModelForCausalLM.register(TalkerConfig, Talker)
