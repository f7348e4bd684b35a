"""The autoregressive ToyWorld model as a training stage: the video tokenizer first, then the transformer on its codes.

    OMP_NUM_THREADS=1 theworld train world-ar --output-dir DIR

Both parts train on `optimize`, the loop every stage shares, with a warm-up-then-cosine learning rate. Seeded end
to end: the same settings give the same checkpoint on the same machine and library versions, and the full settings
are the ones the shipped `theworld/data/toyworld-ar` was trained with. The stage writes its own folder (the
autoregressive world model's format, not TheWorld's), so `train all` does not run it.

The model learns ToyWorld's caption words through its `TokenLayout` (saved in `world_model.json`); `caption_words`
lists them here, where ToyWorld may be imported.
"""

import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaForCausalLM

from theworld.media import to_model_range
from theworld.toyworld import COLOURS, KINDS, RADII, caption, simulate, split_seeds
from theworld.toyworld.render import BACKGROUND
from theworld.training.loop import optimize, warmup_cosine
from theworld.training.stage import StageContext, report_figures
from theworld.world.autoregressive.model import CONFIG_NAME, AutoregressiveWorldModel, TokenLayout, transformer_config
from theworld.world.autoregressive.tokenizer import VideoTokenizer

__all__ = [
    "MOTION_WORDS",
    "WORLD_AR_SETTINGS",
    "WorldARSettings",
    "caption_words",
    "require_autoregressive_model",
    "train_world_ar",
    "world_ar_stage",
]

MOTION_WORDS = ("a", "moving", "left", "right", "up", "down", "and", "falling", "rising", "at", "rest", ",", ".")
WARMUP_STEPS = 50


def caption_words() -> list[str]:
    """Every word a ToyWorld caption can use (`theworld.toyworld.caption`), in a fixed order."""
    return [*MOTION_WORDS, *RADII, *COLOURS, *KINDS]


@dataclass(frozen=True)
class WorldARSettings:
    num_clips: int = 2000
    clip_frames: int = 12
    context_frames: int = 6
    tokenizer_steps: int = 4000
    tokenizer_batch: int = 24
    tokenizer_lr: float = 2e-3
    transformer_steps: int = 4000
    transformer_batch: int = 8
    transformer_lr: float = 3e-3
    # Widths after each halving of the frame: three halvings give an 8x8 code grid on 64-pixel frames, two a 16x16.
    tokenizer_channels: tuple[int, ...] = (16, 32, 64)
    text_probability: float = 0.5  # share of training windows that start with their caption
    # A second pass (its own seeded data order, so it continues a saved model exactly as it continues in memory):
    # `refine_steps` more updates at `refine_lr`, where `refine_text_share` of the windows are a caption and the
    # first `text_frames` frames it describes, so that text2world learns to draw what the prompt names.
    refine_steps: int = 0
    refine_lr: float = 1e-3
    refine_text_share: float = 0.5
    text_frames: int = 2
    # Exposure bias: generating, the transformer reads its own imperfect frames, while training it reads true ones.
    # Each training window has a share of its context codes, drawn from U[0, context_noise], replaced by random
    # codes (the labels stay the true codes), so it learns to continue a frame that is partly wrong.
    context_noise: float = 0.2
    hidden: int = 128
    layers: int = 4
    seed: int = 0


WORLD_AR_SETTINGS = {
    "full": WorldARSettings(),
    "smoke": WorldARSettings(
        num_clips=2, tokenizer_steps=2, tokenizer_batch=4, transformer_steps=2, transformer_batch=2, hidden=32, layers=1
    ),
}


def train_world_ar(output_dir: str | Path, settings: WorldARSettings = WORLD_AR_SETTINGS["full"]) -> dict:
    """Simulate ToyWorld training clips, train the tokenizer and the transformer, save the model folder in
    `output_dir`; return the stage's figures (last losses, codes in use, seconds)."""
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    clips = [simulate(seed, settings.clip_frames) for seed in split_seeds("train", settings.num_clips)]
    frames = np.stack([c.frames for c in clips])
    captions = [[caption(c, t) for t in range(settings.clip_frames)] for c in clips]
    flat = to_model_range(frames.reshape(-1, *frames.shape[2:]))
    tokenizer, tokenizer_loss = _train_tokenizer(flat, settings)
    codes = torch.cat([tokenizer.encode(chunk) for chunk in flat.split(512)])
    codes = codes.view(len(clips), settings.clip_frames, *codes.shape[1:])
    layout = TokenLayout(
        num_codes=tokenizer.num_codes,
        tokens_per_frame=codes.shape[-1] * codes.shape[-2],
        frame_size=frames.shape[-2],
        context_frames=settings.context_frames,
        words=tuple(caption_words()),
    )
    transformer, transformer_loss = _train_transformer(codes, captions, layout, settings)
    refine_loss = refine_transformer(transformer, codes, captions, layout, settings) if settings.refine_steps else None
    AutoregressiveWorldModel(tokenizer, transformer, layout).save_pretrained(output_dir)
    return {
        "tokenizer_loss": tokenizer_loss,
        "codes_in_use": codes.unique().numel(),
        "transformer_loss": transformer_loss,
        **({"refine_loss": refine_loss} if refine_loss is not None else {}),
        "world_ar_seconds": round(time.perf_counter() - started, 1),
    }


def world_ar_stage(context: StageContext) -> dict:
    """The "world-ar" stage of `theworld train`: `train_world_ar` into the stage's folder, with its figures printed."""
    if (context.output_dir / "config.json").is_file():
        raise FileExistsError(
            f"{context.output_dir} holds TheWorld's checkpoint; give the world-ar stage a folder of its own "
            "with --output-dir"
        )
    return report_figures(context.stage, train_world_ar(context.output_dir, context.settings))


def require_autoregressive_model(folder: Path) -> None:
    """The stages that train into a model `world-ar` made refuse a folder without one, naming the command."""
    if not (folder / CONFIG_NAME).is_file():
        raise FileNotFoundError(
            f"{folder} holds no autoregressive world model; run `theworld train world-ar --output-dir {folder}` first"
        )


def _train_tokenizer(frames: torch.Tensor, settings: WorldARSettings) -> tuple[VideoTokenizer, float]:
    """Reconstruction on frames (N, 3, H, W) in [-1, 1]; shape pixels weigh 20x the background."""
    tokenizer = VideoTokenizer(channels=settings.tokenizer_channels)
    background = torch.tensor(BACKGROUND / 127.5 - 1, dtype=torch.float32).view(1, 3, 1, 1)
    generator = torch.Generator().manual_seed(settings.seed)

    def step_loss() -> tuple[torch.Tensor, float]:
        batch = frames[torch.randint(len(frames), (settings.tokenizer_batch,), generator=generator)]
        weight = 1 + 19 * ((batch - background).abs().amax(1, keepdim=True) > 0.05).float()
        loss = (weight * (tokenizer(batch) - batch).pow(2)).mean()
        return loss, loss.item()

    steps = settings.tokenizer_steps
    schedule = warmup_cosine(steps, WARMUP_STEPS)
    loss = optimize(
        tokenizer.parameters(), steps, settings.tokenizer_lr, step_loss, "tokenizer", schedule=schedule, clip_norm=None
    )
    return tokenizer.eval(), loss


def _windows(
    codes: torch.Tensor, captions: list[list[str]], layout: TokenLayout, settings: WorldARSettings, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch of right-padded sequences: [BOS] (caption [TEXT])? frames; loss on frame tokens only."""
    rows, targets = [], []
    for _ in range(settings.transformer_batch):
        clip = rng.randrange(len(codes))
        start = rng.randrange(settings.clip_frames - settings.context_frames + 1)
        text = layout.text_ids(captions[clip][start]) if rng.random() < settings.text_probability else []
        frames = layout.frame_ids(codes[clip, start : start + settings.context_frames]).tolist()
        rows.append([layout.special("[BOS]"), *text, *frames])
        targets.append([-100] * (1 + len(text)) + frames)
    width = max(map(len, rows))
    pad = layout.special("[PAD]")
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    labels = torch.tensor([t + [-100] * (width - len(t)) for t in targets])
    return ids, (ids != pad).long(), labels


def _corrupt_context(
    ids: torch.Tensor, layout: TokenLayout, settings: WorldARSettings, generator: torch.Generator
) -> torch.Tensor:
    """`ids` with a share of each row's frame codes, drawn from U[0, `settings.context_noise`], replaced by random
    codes; text and special tokens are kept. A separate generator, so the windows drawn do not depend on it."""
    if not settings.context_noise:
        return ids
    share = torch.rand(len(ids), 1, generator=generator) * settings.context_noise
    replaced = (ids < layout.num_codes) & (torch.rand(ids.shape, generator=generator) < share)
    return torch.where(replaced, torch.randint(layout.num_codes, ids.shape, generator=generator), ids)


def _train_transformer(
    codes: torch.Tensor, captions: list[list[str]], layout: TokenLayout, settings: WorldARSettings
) -> tuple[LlamaForCausalLM, float]:
    """Next-token prediction on windows of `context_frames` frames, half of them after their caption."""
    torch.manual_seed(settings.seed)
    model = LlamaForCausalLM(transformer_config(layout, settings.hidden, settings.layers))
    rng = random.Random(settings.seed)
    noise = torch.Generator().manual_seed(settings.seed + 2)
    model.train()

    def step_loss() -> tuple[torch.Tensor, float]:
        ids, mask, labels = _windows(codes, captions, layout, settings, rng)
        ids = _corrupt_context(ids, layout, settings, noise)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        return loss, loss.item()

    steps = settings.transformer_steps
    loss = optimize(
        model.parameters(),
        steps,
        settings.transformer_lr,
        step_loss,
        "transformer",
        weight_decay=0.01,
        schedule=warmup_cosine(steps, WARMUP_STEPS),
        betas=(0.9, 0.95),
    )
    return model.eval(), loss


def training_codes(tokenizer: VideoTokenizer, settings: WorldARSettings) -> tuple[torch.Tensor, list[list[str]]]:
    """The training clips' codes (clips, T, h, w) under `tokenizer`, and their captions: what the transformer and
    its refinement train on (the same clips `train_world_ar` simulates)."""
    clips = [simulate(seed, settings.clip_frames) for seed in split_seeds("train", settings.num_clips)]
    frames = to_model_range(np.stack([c.frames for c in clips]).reshape(-1, *clips[0].frames.shape[1:]))
    codes = torch.cat([tokenizer.encode(chunk) for chunk in frames.split(512)])
    captions = [[caption(c, t) for t in range(settings.clip_frames)] for c in clips]
    return codes.view(len(clips), settings.clip_frames, *codes.shape[1:]), captions


def refine_transformer(
    model: LlamaForCausalLM,
    codes: torch.Tensor,
    captions: list[list[str]],
    layout: TokenLayout,
    settings: WorldARSettings,
) -> float:
    """The second pass (`WorldARSettings.refine_steps`): windows as in the first, and captions followed by the
    first frames they describe. Trains `model` in place; returns the last loss."""
    rng = random.Random(settings.seed + 1)
    noise = torch.Generator().manual_seed(settings.seed + 3)
    model.train()

    def step_loss() -> tuple[torch.Tensor, float]:
        ids, mask, labels = _windows(codes, captions, layout, settings, rng)
        short = settings.text_frames * layout.frame_stride + 32  # room for a caption
        for row in range(len(ids)):
            if rng.random() >= settings.refine_text_share:
                continue
            clip = rng.randrange(len(codes))
            start = rng.randrange(settings.clip_frames - settings.text_frames + 1)
            text = layout.text_ids(captions[clip][start])
            frames = layout.frame_ids(codes[clip, start : start + settings.text_frames]).tolist()
            seq = [layout.special("[BOS]"), *text, *frames][:short]
            target = ([-100] * (1 + len(text)) + frames)[:short]
            ids[row], mask[row], labels[row] = layout.special("[PAD]"), 0, -100
            ids[row, : len(seq)], mask[row, : len(seq)] = torch.tensor(seq), 1
            labels[row, : len(target)] = torch.tensor(target)
        ids = _corrupt_context(ids, layout, settings, noise)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        return loss, loss.item()

    loss = optimize(
        model.parameters(), settings.refine_steps, settings.refine_lr, step_loss, "refine", weight_decay=0.01,
        schedule=warmup_cosine(settings.refine_steps, min(WARMUP_STEPS, settings.refine_steps // 10)),
        betas=(0.9, 0.95),
    )  # fmt: skip
    model.eval()
    return loss
