"""Train the autoregressive ToyWorld model on CPU: tokenizer first, then the transformer on its codes.

    OMP_NUM_THREADS=1 python -m theworld.world.autoregressive.train --output-dir DIR

Seeded end to end: the same arguments give the same checkpoint. The defaults took 10.5 minutes (630 s) on
one CPU thread and produce the shipped `theworld/data/toyworld-ar`.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from theworld.toyworld import caption, simulate, split_seeds
from theworld.toyworld.render import BACKGROUND
from theworld.training.data import to_model_range
from theworld.world.autoregressive.model import (
    AutoregressiveWorldModel,
    TokenLayout,
    caption_words,
    transformer_config,
)
from theworld.world.autoregressive.tokenizer import VideoTokenizer

__all__ = ["TrainConfig", "train"]


@dataclass(frozen=True)
class TrainConfig:
    num_clips: int = 2000
    clip_frames: int = 12
    context_frames: int = 6
    tokenizer_steps: int = 1200
    tokenizer_batch: int = 24
    tokenizer_lr: float = 2e-3
    transformer_steps: int = 1000
    transformer_batch: int = 8
    transformer_lr: float = 3e-3
    text_probability: float = 0.5  # share of training windows that start with their caption
    hidden: int = 128
    layers: int = 4
    seed: int = 0


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_tokenizer(frames: torch.Tensor, config: TrainConfig, log: Callable[[str], None]) -> VideoTokenizer:
    """Reconstruction on frames (N, 3, H, W) in [-1, 1]; shape pixels weigh 20x the background."""
    tokenizer = VideoTokenizer()
    opt = torch.optim.AdamW(tokenizer.parameters(), lr=config.tokenizer_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, config.tokenizer_steps, 50))
    background = torch.tensor(BACKGROUND / 127.5 - 1, dtype=torch.float32).view(1, 3, 1, 1)
    generator = torch.Generator().manual_seed(config.seed)
    for step in range(config.tokenizer_steps):
        batch = frames[torch.randint(len(frames), (config.tokenizer_batch,), generator=generator)]
        weight = 1 + 19 * ((batch - background).abs().amax(1, keepdim=True) > 0.05).float()
        loss = (weight * (tokenizer(batch) - batch).pow(2)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == config.tokenizer_steps - 1:
            log(f"tokenizer step {step:5d} loss {loss.item():.4f}")
    return tokenizer.eval()


def _windows(codes: torch.Tensor, captions: list[list[str]], layout: TokenLayout, config: TrainConfig, rng):
    """One batch of right-padded sequences: [BOS] (caption [TEXT])? frames; loss on frame tokens only."""
    rows, targets = [], []
    for _ in range(config.transformer_batch):
        clip = rng.randrange(len(codes))
        start = rng.randrange(config.clip_frames - config.context_frames + 1)
        text = layout.text_ids(captions[clip][start]) if rng.random() < config.text_probability else []
        frames = layout.frame_ids(codes[clip, start : start + config.context_frames]).tolist()
        rows.append([layout.special("[BOS]"), *text, *frames])
        targets.append([-100] * (1 + len(text)) + frames)
    width = max(map(len, rows))
    pad = layout.special("[PAD]")
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    labels = torch.tensor([t + [-100] * (width - len(t)) for t in targets])
    return ids, (ids != pad).long(), labels


def train_transformer(codes: torch.Tensor, captions, layout: TokenLayout, config: TrainConfig, log):
    from transformers import LlamaForCausalLM

    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(transformer_config(layout, config.hidden, config.layers))
    opt = torch.optim.AdamW(model.parameters(), lr=config.transformer_lr, weight_decay=0.01, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, config.transformer_steps, 50))
    rng = random.Random(config.seed)
    model.train()
    for step in range(config.transformer_steps):
        ids, mask, labels = _windows(codes, captions, layout, config, rng)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == config.transformer_steps - 1:
            log(f"transformer step {step:5d} loss {loss.item():.4f}")
    return model.eval()


def train(output_dir: str | Path, config: TrainConfig = TrainConfig(), log: Callable[[str], None] = print) -> Path:
    """Simulate ToyWorld training clips, train both parts, and save the checkpoint folder."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    clips = [simulate(seed, config.clip_frames) for seed in split_seeds("train", config.num_clips)]
    frames = np.stack([c.frames for c in clips])
    captions = [[caption(c, t) for t in range(config.clip_frames)] for c in clips]
    log(f"simulated {len(clips)} clips in {time.perf_counter() - start:.0f}s")
    flat = to_model_range(frames.reshape(-1, *frames.shape[2:]))
    tokenizer = train_tokenizer(flat, config, log)
    log(f"tokenizer trained at {time.perf_counter() - start:.0f}s")
    codes = torch.cat([tokenizer.encode(chunk) for chunk in flat.split(512)])
    codes = codes.view(len(clips), config.clip_frames, *codes.shape[1:])
    layout = TokenLayout(
        num_codes=tokenizer.num_codes,
        tokens_per_frame=codes.shape[-1] * codes.shape[-2],
        frame_size=frames.shape[-2],
        context_frames=config.context_frames,
        words=tuple(caption_words()),
    )
    log(f"codes in use: {codes.unique().numel()} of {layout.num_codes}")
    transformer = train_transformer(codes, captions, layout, config, log)
    folder = AutoregressiveWorldModel(tokenizer, transformer, layout).save_pretrained(output_dir)
    log(f"saved {folder} after {time.perf_counter() - start:.0f}s")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, type=Path)
    defaults = TrainConfig()
    for name in ("num_clips", "tokenizer_steps", "transformer_steps", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    args = parser.parse_args(argv)
    config = TrainConfig(
        num_clips=args.num_clips,
        tokenizer_steps=args.tokenizer_steps,
        transformer_steps=args.transformer_steps,
        seed=args.seed,
    )
    train(args.output_dir, config)


if __name__ == "__main__":
    main()
