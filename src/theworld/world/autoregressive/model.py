"""The autoregressive world model: a video tokenizer and a causal transformer over its codes.

Token layout (one vocabulary, `TokenLayout`):

    [BOS] (word ... [TEXT]) ([FRAME] code x 64) ([FRAME] code x 64) ...
          optional prompt    conditioning frames, then predicted frames

Ids 0..num_codes-1 are the tokenizer's FSQ codes, then the specials, then the layout's small word
vocabulary for text conditioning: the training stage chooses the words, and the model knows them only
from `world_model.json`. Generation is `transformers`' `generate` (top_p, top_k, temperature, KV cache)
with `FrameGrammar`, a logits processor that forces `[FRAME]` where a frame starts and allows only codes
inside a frame, so every sample decodes to whole frames.

A checkpoint is a folder: `world_model.json` (the layout), `tokenizer/` (diffusers `VideoTokenizer`),
`transformer/` (transformers `LlamaForCausalLM`) and, optionally, `diffusion_decoder/` (`DiffusionDecoder`: the
codes -> a VAE latent -> frames, used instead of the tokenizer's own decoder when asked for) and `text_to_frame/`
(`TextToFrame`: text2world's first frame, drawn from the prompt into that VAE's latent), all safetensors.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessor, LogitsProcessorList

from theworld.media import to_model_range, to_uint8
from theworld.world.autoregressive.diffusion_decoder import DiffusionDecoder
from theworld.world.autoregressive.text_to_frame import TextToFrame, word_indices
from theworld.world.autoregressive.tokenizer import VideoTokenizer

__all__ = ["CONFIG_NAME", "AutoregressiveWorldModel", "FrameGrammar", "TokenLayout", "transformer_config"]

CONFIG_NAME = "world_model.json"
SPECIALS = ("[PAD]", "[BOS]", "[TEXT]", "[FRAME]", "[UNK]")


@dataclass(frozen=True)
class TokenLayout:
    """Where codes, specials and words live in the transformer's vocabulary; saved as `world_model.json`."""

    num_codes: int
    tokens_per_frame: int  # codes per frame, without the [FRAME] separator
    frame_size: int  # pixels, square
    context_frames: int  # frames per training window; generation slides a window this long
    words: tuple[str, ...]
    model_type: str = "theworld-autoregressive"

    def special(self, name: str) -> int:
        return self.num_codes + SPECIALS.index(name)

    @property
    def vocab_size(self) -> int:
        return self.num_codes + len(SPECIALS) + len(self.words)

    @property
    def frame_stride(self) -> int:
        return self.tokens_per_frame + 1

    def text_ids(self, prompt: str | None) -> list[int]:
        """Known words of `prompt` followed by [TEXT]; [] when no word is known (no text condition)."""
        first = self.num_codes + len(SPECIALS)
        ids = [first + i for i in word_indices(prompt, self.words)]
        return [*ids, self.special("[TEXT]")] if ids else []

    def frame_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """(T, h, w) codes -> (T * frame_stride,) ids, each frame preceded by [FRAME]."""
        sep = torch.full((codes.shape[0], 1), self.special("[FRAME]"), dtype=torch.long)
        return torch.cat([sep, codes.reshape(codes.shape[0], -1).long()], 1).reshape(-1)

    def save(self, folder: Path) -> None:
        (folder / CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> TokenLayout:
        values = json.loads((folder / CONFIG_NAME).read_text())
        return cls(**{**values, "words": tuple(values["words"])})


class FrameGrammar(LogitsProcessor):
    """Generated token j (counted from `start`) must be [FRAME] when j % frame_stride == 0, else a code."""

    def __init__(self, layout: TokenLayout, start: int):
        self.layout, self.start = layout, start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        masked = torch.full_like(scores, float("-inf"))
        if (input_ids.shape[1] - self.start) % self.layout.frame_stride == 0:
            frame = self.layout.special("[FRAME]")
            masked[:, frame] = scores[:, frame]
        else:
            masked[:, : self.layout.num_codes] = scores[:, : self.layout.num_codes]
        return masked


def transformer_config(layout: TokenLayout, hidden: int = 128, layers: int = 4, heads: int = 4) -> LlamaConfig:
    """A tiny Llama sized for `layout`: room for a prompt and `context_frames` frames."""
    return LlamaConfig(
        vocab_size=layout.vocab_size,
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=64 + layout.context_frames * layout.frame_stride,
        pad_token_id=layout.special("[PAD]"),
        bos_token_id=layout.special("[BOS]"),
        eos_token_id=None,
        tie_word_embeddings=True,
    )


class AutoregressiveWorldModel:
    """Tokenizer + transformer + layout (+ diffusion decoder, + text-to-frame model); `predict` continues a video (or
    a prompt) by whole frames. `use_diffusion_decoder` picks the decoder (when there is one);
    `offload_diffusion_decoder` keeps it (and the text-to-frame model) on the CPU between uses."""

    def __init__(
        self,
        tokenizer: VideoTokenizer,
        transformer: LlamaForCausalLM,
        layout: TokenLayout,
        diffusion_decoder: DiffusionDecoder | None = None,
        text_to_frame: TextToFrame | None = None,
    ):
        self.tokenizer, self.transformer, self.layout = tokenizer.eval(), transformer.eval(), layout
        self.diffusion_decoder = diffusion_decoder
        self.text_to_frame = text_to_frame
        # On whenever the model has one, as in Predict1: the object reader reads more of the objects it draws
        self.use_diffusion_decoder = diffusion_decoder is not None
        self.offload_diffusion_decoder = False

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> AutoregressiveWorldModel:
        folder = Path(folder)
        if not (folder / CONFIG_NAME).is_file():
            raise ValueError(f"{str(folder)!r} has no {CONFIG_NAME}; it is not an autoregressive world model")
        tokenizer = VideoTokenizer.from_pretrained(folder / "tokenizer").to(device)
        transformer = LlamaForCausalLM.from_pretrained(folder / "transformer").to(device)
        decoder = DiffusionDecoder.from_pretrained(folder, tokenizer.fsq, device)
        layout = TokenLayout.load(folder)
        return cls(tokenizer, transformer, layout, decoder, TextToFrame.from_pretrained(folder, layout.words, device))

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(folder / "tokenizer", safe_serialization=True)
        self.transformer.save_pretrained(folder / "transformer", safe_serialization=True)
        self.layout.save(folder)
        if self.diffusion_decoder is not None:
            self.diffusion_decoder.save_pretrained(folder)
        if self.text_to_frame is not None:
            self.text_to_frame.save_pretrained(folder)
        return folder

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 frames at `layout.frame_size` -> (T, h, w) codes."""
        return self.tokenizer.encode(to_model_range(frames).to(self.device))

    def decode(self, codes: torch.Tensor, seed: int = 0) -> np.ndarray:
        """(T, h, w) codes -> (T, H, W, 3) uint8 frames: by the diffusion decoder (seeded) when in use."""
        decoder = self.diffusion_decoder if self.use_diffusion_decoder else None
        if decoder is None:
            return to_uint8(self.tokenizer.decode(codes.to(self.device)))
        with self._on_device(decoder):
            return to_uint8(decoder.decode(codes, seed))

    @contextmanager
    def _on_device(self, *parts):
        """The diffusion parts on the model's device while in use; back on the CPU after, when offloading them."""
        for part in parts:
            part.to(self.device)
        try:
            yield
        finally:
            if self.offload_diffusion_decoder:
                for part in parts:
                    part.to("cpu")

    @torch.no_grad()
    def predict(
        self,
        frames: np.ndarray | None,
        num_frames: int,
        prompt: str | None = None,
        seed: int = 0,
        top_p: float | None = 0.9,
        top_k: int | None = None,
        temperature: float = 1.0,
        use_cache: bool = True,
        progress=None,
        guidance: float | None = None,
    ) -> np.ndarray:
        """Continue `frames` (T, H, W, 3) uint8, or start from the prompt alone, by `num_frames` new frames. With no
        frames, a model with a text-to-frame model draws the first frame from the prompt (`draw_first_frame`, guided
        by `guidance` or its own default) and the transformer continues it.

        The transformer saw `context_frames` frames in training, so longer videos slide a window: each call
        to `generate` keeps the latest frames that fit and adds the rest. Sampling is seeded by `seed`
        without touching the global RNG; `temperature=0` is greedy. `guidance` > 1 is classifier-free guidance on
        the prompt (transformers' `guidance_scale`: the same frames without the prompt are the unconditional input).
        """
        layout = self.layout
        drawn, total = None, num_frames
        # Its latents are painted by the diffusion decoder's VAE, so the drawer is used only beside a diffusion decoder
        can_draw = self.text_to_frame is not None and self.diffusion_decoder is not None
        if (frames is None or not len(frames)) and can_draw:
            # text2world: the first frame is drawn from the prompt, and the transformer continues it
            frames = drawn = self.draw_first_frame(prompt, seed, guidance)
            num_frames -= 1
            if progress is not None:
                progress(1, total)
            if num_frames == 0:
                return drawn
        done = total - num_frames  # frames already made: the drawn one, if any
        codes = self.encode(frames) if frames is not None and len(frames) else None
        history = [] if codes is None else list(codes.cpu())
        text = [layout.special("[BOS]"), *layout.text_ids(prompt)]
        made: list[torch.Tensor] = []
        keep = max(1, layout.context_frames // 2)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            while len(made) < num_frames:
                limit = keep if made else layout.context_frames - 1
                context = history[-limit:] if history else []
                new = min(num_frames - len(made), layout.context_frames - len(context))
                frame_ids = layout.frame_ids(torch.stack(context)).tolist() if context else []
                guided = self._guidance(guidance, text, frame_ids)
                out = self._generate(text + frame_ids, new, top_p, top_k, temperature, use_cache, **guided)
                fresh = out.view(new, layout.frame_stride)[:, 1:].view(new, *self._grid)
                history.extend(fresh)
                made.extend(fresh)
                if progress is not None:
                    progress(done + len(made), total)
        made = self.decode(torch.stack(made), seed)
        return made if drawn is None else np.concatenate([drawn, made])

    @torch.no_grad()
    def draw_first_frame(self, prompt: str | None, seed: int = 0, guidance: float | None = None) -> np.ndarray:
        """(1, H, W, 3) uint8: the text-to-frame model's frame for `prompt` (a random scene when it names nothing),
        painted by the diffusion decoder's VAE. `guidance` defaults to `TextToFrame.guidance`."""
        drawer, decoder = self.text_to_frame, self.diffusion_decoder
        with self._on_device(drawer, decoder):
            size = decoder.unet.config.sample_size
            shape = (decoder.unet.config.out_channels, size, size)
            latents = drawer.latents([prompt], shape, seed, drawer.guidance if guidance is None else guidance)
            return to_uint8(decoder.decode_latents(latents))

    @property
    def _grid(self) -> tuple[int, int]:
        side = int(round(self.layout.tokens_per_frame**0.5))
        return side, side

    def _guidance(self, guidance: float | None, text: list[int], frame_ids: list[int]) -> dict:
        """`generate`'s classifier-free guidance arguments: the same frames without the prompt are the unconditional
        input. Empty when not asked for, or when there is no prompt to guide by."""
        if guidance is None or guidance == 1 or len(text) < 2:
            return {}
        negative = torch.tensor([text[:1] + frame_ids], device=self.device)
        mask = torch.ones_like(negative)
        return dict(guidance_scale=guidance, negative_prompt_ids=negative, negative_prompt_attention_mask=mask)

    def _generate(self, prompt_ids, new_frames, top_p, top_k, temperature, use_cache, **guided) -> torch.Tensor:
        input_ids = torch.tensor([prompt_ids], device=self.device)
        # top_k=0 turns top-k off (the generation config's default would be 50); temperature 0 is greedy
        sampling = dict(do_sample=True, top_p=top_p or 1.0, top_k=top_k or 0, temperature=temperature)
        out = self.transformer.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=new_frames * self.layout.frame_stride,
            min_new_tokens=new_frames * self.layout.frame_stride,
            **(sampling if temperature > 0 else dict(do_sample=False)),
            logits_processor=LogitsProcessorList([FrameGrammar(self.layout, input_ids.shape[1])]),
            use_cache=use_cache,
            pad_token_id=self.layout.special("[PAD]"),
            **guided,
        )
        return out[0, input_ids.shape[1] :].cpu()
