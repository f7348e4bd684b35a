"""Text2world's first frame, drawn by a text-conditioned latent diffusion model before the transformer rolls it on.

Cosmos-Predict1's autoregressive models continue frames they are given; its text2world runs through a diffusion
model, which draws what a caption names far more reliably than token-by-token sampling from a caption. Here, the
same split at ToyWorld's scale: a small diffusers `UNet2DConditionModel` denoises the first frame's latent under
ToyWorld's VAE (the diffusion decoder's, so the frame is painted by the same decoder) by flow matching, attending
to a tiny transformers `T5EncoderModel`'s reading of the prompt; classifier-free guidance (`guidance`) weighs the
prompt against the unconditional draw. The transformer then continues the frame as image2world, with the prompt.

The encoder reads each object the prompt names ("a large red ball moving right", "a small blue square") on its own
and pools it into one token (`one_token_per_object`, saved in its config), so the denoiser's attention takes an
object's colour and kind together: attending to words, a small denoiser binds colours to the wrong kinds when a
prompt names several shapes (docs/world-generation.md measures both).

Words are the layout's caption words; id 0 pads, id 1 is the empty prompt (the unconditional input). Saved as
`text_to_frame/` in the model folder: `unet/`, `text_encoder/` and `scheduler/` (safetensors).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UNet2DConditionModel
from torch.nn.utils.rnn import pad_sequence
from transformers import T5Config, T5EncoderModel

__all__ = ["TextToFrame", "object_phrases", "text_denoiser_for", "text_encoder_for", "word_indices"]

FOLDER = "text_to_frame"
PAD, EMPTY = 0, 1
# The words of a prompt it reads, as a T5 tokenizer truncates: a caption of three shapes has about 25, and attention
# costs the square of the length, so a huge prompt costs no more than this
MAX_WORDS = 64
DEFAULT_GUIDANCE = 3.0  # classifier-free guidance when a request sets none (docs/world-generation.md measures it)


def word_indices(prompt: str | None, words: tuple[str, ...]) -> list[int]:
    """The indices in `words` of the prompt's known words, in order (case and unknown words ignored): how both the
    transformer and the text-to-frame model read a prompt."""
    index = {w: i for i, w in enumerate(words)}
    return [index[w] for w in re.findall(r"[a-z]+|[,.]", (prompt or "").lower()) if w in index]


def text_encoder_for(
    num_words: int, width: int = 64, layers: int = 2, one_token_per_object: bool = False
) -> T5EncoderModel:
    """A small T5 encoder over the caption words (plus the pad and empty-prompt ids). With `one_token_per_object`,
    each object the prompt names is read on its own and pooled into one token (saved in the encoder's config)."""
    config = T5Config(
        vocab_size=num_words + 2, d_model=width, d_kv=width // 4, d_ff=2 * width, num_layers=layers, num_heads=4,
        pad_token_id=PAD, dropout_rate=0.0, one_token_per_object=one_token_per_object,
    )  # fmt: skip
    return T5EncoderModel(config)


def object_phrases(indices: list[int], words: tuple[str, ...]) -> list[list[int]]:
    """A prompt's word indices split into one phrase per object named: every object a caption names starts with
    "a" ("a large red ball moving right, a small blue square at rest."); the joining words and punctuation between
    phrases are dropped. Words before the first "a" are a phrase of their own."""
    joining = {words.index(w) for w in ("and", ",", ".") if w in words}
    article = words.index("a") if "a" in words else None
    phrases: list[list[int]] = []
    for i in indices:
        if i == article or not phrases:
            phrases.append([])
        phrases[-1].append(i)
    for phrase in phrases:
        while phrase and phrase[-1] in joining:
            phrase.pop()
    return [p for p in phrases if p]


def text_denoiser_for(
    latent_channels: int,
    latent_size: int,
    text_width: int = 64,
    attention_layers: int = 1,
    full_grid_cross_attention: bool = False,
) -> UNet2DConditionModel:
    """A small UNet over the latent grid that attends to the prompt at its coarser resolution and in the middle, with
    `attention_layers` transformer layers each; with `full_grid_cross_attention`, also on the full grid, where it only
    cross-attends (self-attention there costs several times as much on a CPU)."""
    outer = "CrossAttn" if full_grid_cross_attention else ""
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=latent_channels,
        out_channels=latent_channels,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=(f"{outer}DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", f"{outer}UpBlock2D"),
        only_cross_attention=(full_grid_cross_attention, False),
        transformer_layers_per_block=attention_layers,
        cross_attention_dim=text_width,
        attention_head_dim=16,
        norm_num_groups=16,
    )


class TextToFrame:
    """prompt -> the normalised latent (C, H', W') of a first frame, for the diffusion decoder's VAE to paint."""

    def __init__(
        self,
        unet: UNet2DConditionModel,
        text_encoder: T5EncoderModel,
        scheduler: FlowMatchEulerDiscreteScheduler,
        words: tuple[str, ...],
        num_steps: int = 20,
        guidance: float = DEFAULT_GUIDANCE,
    ):
        self.unet, self.text_encoder, self.scheduler = unet.eval(), text_encoder.eval(), scheduler
        self.words, self.num_steps, self.guidance = tuple(words), num_steps, guidance

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def to(self, device: str | torch.device) -> TextToFrame:
        self.unet.to(device)
        self.text_encoder.to(device)
        return self

    def word_ids(self, prompts: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, L) ids and attention mask: each prompt's first `MAX_WORDS` known words; none is the empty prompt."""
        return self._padded([[2 + i for i in word_indices(p, self.words)[:MAX_WORDS]] or [EMPTY] for p in prompts])

    def _padded(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of ids right-padded into (N, L) ids and their attention mask."""
        length = max(len(r) for r in rows)
        ids = torch.tensor([r + [PAD] * (length - len(r)) for r in rows], device=self.device)
        return ids, (ids != PAD).long()

    def encode_prompts(self, prompts: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, L, width) states the denoiser attends to and their (N, L) mask: one per word, or one per object."""
        if getattr(self.text_encoder.config, "one_token_per_object", False):
            return self.encode_objects(prompts)
        ids, mask = self.word_ids(prompts)
        return self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask

    def encode_objects(self, prompts: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """One token per object named, each phrase encoded alone and mean-pooled, so a colour cannot be read as
        another object's (the prompt's other words cannot reach it); an empty prompt is one empty token."""
        phrases = [object_phrases(word_indices(p, self.words)[:MAX_WORDS], self.words) or [[]] for p in prompts]
        ids, mask = self._padded([[2 + i for i in phrase] or [EMPTY] for rows in phrases for phrase in rows])
        states = self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1)
        counts = [len(rows) for rows in phrases]  # each prompt's phrases, then padded to the most any prompt has
        tokens = pad_sequence(pooled.split(counts), batch_first=True)
        token_mask = pad_sequence([mask.new_ones(n) for n in counts], batch_first=True)
        return tokens, token_mask

    def velocity(self, sample: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor, mask: torch.Tensor):
        """The flow velocity at noise level `sigma` (N,) in [0, 1] (the scheduler's timesteps are 1000 sigma)."""
        return self.unet(sample, sigma * 1000, encoder_hidden_states=text, encoder_attention_mask=mask).sample

    @torch.no_grad()
    def latents(
        self, prompts: list[str | None], shape: tuple[int, ...], seed: int = 0, guidance: float = DEFAULT_GUIDANCE
    ):
        """Normalised latents (N, *shape) drawn from seeded noise; `guidance` > 1 pushes away from the empty prompt."""
        text, mask = self.encode_prompts(list(prompts))
        empty, empty_mask = self.encode_prompts([None] * len(prompts))
        generator = torch.Generator().manual_seed(seed)
        sample = torch.randn((len(prompts), *shape), generator=generator).to(self.device)
        self.scheduler.set_timesteps(self.num_steps, device=self.device)
        for t in self.scheduler.timesteps:
            sigma = (t / 1000).expand(len(prompts))
            velocity = self.velocity(sample, sigma, text, mask)
            if guidance != 1:
                unconditional = self.velocity(sample, sigma, empty, empty_mask)
                velocity = unconditional + guidance * (velocity - unconditional)
            sample = self.scheduler.step(velocity, t, sample).prev_sample
        return sample

    def save_pretrained(self, folder: Path) -> None:
        folder = Path(folder) / FOLDER
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        self.text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=True)
        self.scheduler.save_pretrained(folder / "scheduler")

    @classmethod
    def from_pretrained(cls, folder: Path, words: tuple[str, ...], device: str | torch.device = "cpu"):
        """The text-to-frame model saved in a model folder, or None when the folder has none."""
        folder = Path(folder) / FOLDER
        if not folder.is_dir():
            return None
        unet = UNet2DConditionModel.from_pretrained(folder / "unet").to(device)
        text_encoder = T5EncoderModel.from_pretrained(folder / "text_encoder").to(device)
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(folder / "scheduler")
        return cls(unet, text_encoder, scheduler, words)
