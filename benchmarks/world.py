"""Autoregressive world generation: video tokens/s with the KV cache against without, in one run.

    OMP_NUM_THREADS=1 python benchmarks/world.py [--model toyworld] [--frames 5] [--repeats 3]

Both columns use the same weights, conditioning frame, seed and sampling (top_p 0.9): image2world from one
ToyWorld frame, `--frames` predicted frames in one `generate` call (65 tokens each: [FRAME] + 8x8 codes).
Times are end to end (tokenize the input, generate, decode frames); the best of `--repeats` runs is kept.
"""

import argparse
import os
import time

import torch

from theworld.toyworld import simulate, split_seeds
from theworld.world.autoregressive import load_backend


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toyworld")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    backend = load_backend(args.model)
    model = backend.model
    frame = simulate(split_seeds("test", 1)[0], 3).frames[-1:]
    tokens = args.frames * model.layout.frame_stride
    params = sum(p.numel() for p in model.transformer.parameters())
    print(
        f"torch {torch.__version__}, device {model.device}, threads {torch.get_num_threads()} "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"
    )
    print(
        f"model {args.model}: transformer {params / 1e6:.2f}M params, {model.layout.tokens_per_frame} codes/frame, "
        f"image2world 1 -> {args.frames} frames = {tokens} new tokens, best of {args.repeats}"
    )
    seconds = {
        cache: best_time(lambda c=cache: model.predict(frame, args.frames, seed=0, use_cache=c), args.repeats)
        for cache in (True, False)
    }
    print(f"{'':14s}{'use_cache=True':>16s}{'use_cache=False':>17s}{'ratio':>8s}")
    rate = {c: tokens / s for c, s in seconds.items()}
    print(f"{'video tok/s':14s}{rate[True]:16.1f}{rate[False]:17.1f}{rate[True] / rate[False]:7.2f}x")
    fps = {c: args.frames / s for c, s in seconds.items()}
    print(f"{'frames/s':14s}{fps[True]:16.2f}{fps[False]:17.2f}{fps[True] / fps[False]:7.2f}x")
    print(f"{'ms/token':14s}{1e3 / rate[True]:16.2f}{1e3 / rate[False]:17.2f}")


if __name__ == "__main__":
    main()
