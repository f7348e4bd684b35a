"""How much of a shape's velocity a world encoder keeps: a probe on its latents, against one on the pixels.

    OMP_NUM_THREADS=1 python benchmarks/velocity_probe.py [--model FOLDER ...] [--pixels] [--clips 600]

For each model (TheWorld-tiny by default), an MLP reads each shape's velocity from the VAE latents around its
true position (a 7x7-cell crop), trained on `--clips` training clips and measured on a quarter as many held-out
ones; `--pixels` also reads it from the same window of the frame itself (the ceiling of any encoder, for this
probe). Prints the velocity error (px / frame), the correlation of the read speed with the true one, and how often
the read speeds answer ToyWorld's "which will move faster" (the question generator's cases: one shape at least
20% faster, over the next 1-4 frames); the first row answers with the simulator's true current speeds. One frame
shows velocity only through its faded motion trails, so this is what the object reader, and the language model
after it, can at best know about speed.
"""

import argparse
from itertools import combinations

import numpy as np
import torch
from torch import nn

from theworld import DEFAULT_MODEL, TheWorld
from theworld.evaluation.world_data import fact_targets
from theworld.media import to_model_range
from theworld.modeling.object_reader import pair_fact_names
from theworld.toyworld import COLOURS, simulate, split_seeds
from theworld.toyworld.dataset import GHOSTS
from theworld.toyworld.language import MAX_STEPS

CELLS = 3  # crop half-width in latent cells
STEPS = 4000
FASTER_COLUMNS = [pair_fact_names(MAX_STEPS).index(f"faster_{k}") for k in range(1, MAX_STEPS + 1)]


def encoder_of(model: str):
    """frames (T, 3, H, W) in [-1, 1] -> (T, C, h, w) features and their downsampling factor."""
    world_encoder = TheWorld.from_pretrained(model).world_encoder.eval()
    return (lambda frames: world_encoder.vae.encode(frames.unsqueeze(2)).latent_dist.mean[:, :, 0]), (
        world_encoder.spatial_factor
    )


def crops(encode, factor: int, split: str, clips: int, scale: int) -> tuple[torch.Tensor, torch.Tensor, list]:
    """A (2R+1)^2 window of features around every shape of every frame with its ghosts and futures."""
    radius = CELLS * scale
    windows, velocities, where = [], [], []
    for seed in split_seeds(split, clips):
        clip = simulate(seed)
        with torch.no_grad():
            features = nn.functional.pad(encode(to_model_range(clip.frames)), (radius,) * 4)
        for t in range(GHOSTS, len(clip.states) - MAX_STEPS):
            for j, shape in enumerate(clip.states[t]):
                x, y = int(shape.x / factor) + radius, int(shape.y / factor) + radius
                windows.append(features[t, :, y - radius : y + radius + 1, x - radius : x + radius + 1].flatten())
                velocities.append((shape.vx, shape.vy))
                where.append((seed, t, j))
    return torch.stack(windows), torch.tensor(velocities, dtype=torch.float32), where


def faster_answered(read_speed: dict, clips: int) -> float:
    """The share of held-out "which will move faster" cases (those the fact heads are trained on, `fact_targets`)
    whose faster shape also reads faster now."""
    names = list(COLOURS)
    right = []
    for seed in split_seeds("val", clips):
        clip = simulate(seed)
        for t in range(GHOSTS, len(clip.states) - MAX_STEPS):
            _, _, pairs, clear = fact_targets(clip, t, names, MAX_STEPS)
            slot_of = [names.index(shape.colour) for shape in clip.states[t]]
            for i, j in combinations(range(len(slot_of)), 2):
                for column in FASTER_COLUMNS:
                    if clear[slot_of[i], slot_of[j], column]:
                        read_faster = read_speed[seed, t, i] > read_speed[seed, t, j]
                        right.append(read_faster == bool(pairs[slot_of[i], slot_of[j], column]))
    return float(np.mean(right))


def probe(name: str, encode, factor: int, clips: int, scale: int = 1) -> None:
    torch.manual_seed(0)
    train_x, train_y, _ = crops(encode, factor, "train", clips, scale)
    val_x, val_y, where = crops(encode, factor, "val", clips // 4, scale)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-4
    train_x, val_x = (train_x - mean) / std, (val_x - mean) / std
    net = nn.Sequential(nn.Linear(train_x.shape[1], 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 2))
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        batch = torch.randint(len(train_x), (128,), generator=generator)
        loss = (net(train_x[batch]) - train_y[batch]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        read = net(val_x)
    error = (read - val_y).pow(2).sum(1).mean().sqrt().item()
    true_speed, read_speed = val_y.norm(dim=1).numpy(), read.norm(dim=1).numpy()
    correlation = np.corrcoef(true_speed, read_speed)[0, 1]
    faster = faster_answered(dict(zip(where, read_speed, strict=True)), clips // 4)
    print(f"| {name} | {error:.2f} | {correlation:.2f} | {faster * 100:.1f}% |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="A TheWorld checkpoint folder (repeatable).")
    parser.add_argument("--pixels", action="store_true", help="Also probe the frames' pixels.")
    parser.add_argument("--clips", type=int, default=600, help="Training clips (held-out: a quarter).")
    args = parser.parse_args()
    print("| read from | velocity error (px / frame) | speed correlation | which moves faster, from the read speeds |")
    print("| --- | --- | --- | --- |")
    truth = {
        (seed, t, j): shape.speed
        for seed in split_seeds("val", args.clips // 4)
        for t, shapes in enumerate(simulate(seed).states)
        for j, shape in enumerate(shapes)
    }
    print(f"| the simulator's current speeds | 0 | 1 | {faster_answered(truth, args.clips // 4) * 100:.1f}% |")
    if args.pixels:
        probe("pixels", lambda frames: frames, 1, args.clips, scale=4)
    for model in args.model or [str(DEFAULT_MODEL)]:
        probe(model, *encoder_of(model), args.clips)


if __name__ == "__main__":
    main()
