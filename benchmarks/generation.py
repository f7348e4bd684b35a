"""World-aware generation vs plain Gemma 3, and prefix-KV generation vs naive re-encoding, side by side.

    OMP_NUM_THREADS=1 python benchmarks/generation.py            # tiny and ~100M random configs
    OMP_NUM_THREADS=1 python benchmarks/generation.py --sizes test
    OMP_NUM_THREADS=1 python benchmarks/generation.py --sizes shipped   # TheWorld-tiny, its trained weights
    OMP_NUM_THREADS=1 python benchmarks/generation.py --sizes shipped --quantize int8   # both models int8

Every figure in a row is measured in the same run, on the same weights and prompt, as the min / median / max of
`--repeats` runs after a warm-up, the two sides of a comparison taking turns:
- decode ms/token of plain Gemma 3 (`Gemma3ForConditionalGeneration`) and of TheWorld with k world steps;
- prefill ms, and the extra prefill cost per world token;
- 64 new tokens through TheWorld's generate (world computed once, read from the KV cache) against a naive loop
  that re-encodes the whole sequence, world included, for every token.
"""

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, Gemma3ForConditionalGeneration

import theworld
from theworld.modeling.fast_decode import prepare_fast_decode
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.presets import config_from_name
from theworld.modeling.processing import build_processor, train_tokenizer
from theworld.modeling.quantization import QUANTIZATIONS

CORPUS = ["where will the red ball be after two steps? top left", "is the blue square falling? yes"] * 20
SHIPPED = "shipped"  # the --sizes name of TheWorld-tiny itself (object reader, mentions, trained weights)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "toyworld_scene.png"


def build(size: str, vocab_size: int):
    tokenizer = train_tokenizer(CORPUS, vocab_size=300)
    overrides = {}
    config = config_from_name(size, tokenizer)
    if vocab_size > len(tokenizer):  # a realistic embedding table; prompt ids stay inside the trained range
        overrides["text_config"] = {**config.text_config.to_dict(), "vocab_size": vocab_size}
        config = config_from_name(size, tokenizer, **overrides)
    vision = config.vision_config
    processor = build_processor(tokenizer, image_size=vision.image_size, image_seq_length=config.mm_tokens_per_image)
    torch.manual_seed(0)
    world = TheWorld(config).eval()
    with torch.no_grad():
        world.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.02)
    plain = Gemma3ForConditionalGeneration(config.to_gemma3()).eval()
    plain.load_state_dict(world.state_dict(), strict=False)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (vision.image_size,) * 2 + (3,), dtype=np.uint8))
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": CORPUS[0]}]}]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    return world, plain, inputs


def build_shipped():
    """TheWorld-tiny and the same weights as plain Gemma 3, on the README's example scene and question."""
    world = TheWorld.from_pretrained(theworld.DEFAULT_MODEL).eval()
    processor = AutoProcessor.from_pretrained(theworld.DEFAULT_MODEL)
    plain = Gemma3ForConditionalGeneration(world.config.to_gemma3()).eval()
    plain.load_state_dict(world.state_dict(), strict=False)  # the world and audio parts are TheWorld's own
    plain.generation_config = world.generation_config
    text = "where will the red shape be after 2 steps?"
    image = Image.open(EXAMPLE).convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    return world, plain, inputs


def timed(*fns, repeats: int) -> list[list[float]]:
    """Seconds of each of `repeats` calls of every fn, after a warm-up of each. The calls take turns (fn 1, fn 2,
    ..., then again), so a drift of the machine's speed during the run falls on every fn alike."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(fns, times, strict=True):
            started = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - started)
    return times


def generation_times(runs: list[tuple], inputs, new_tokens: int, repeats: int) -> list[tuple[list[float], list[float]]]:
    """For each (model, generate kwargs) of `runs`: (prefill seconds, decode seconds per token) of each repeat, from
    generate with 1 and with 1 + new_tokens tokens; the models take turns."""

    def run(model, kwargs, n):
        return lambda: model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, **kwargs)

    prefills = timed(*(run(model, kwargs, 1) for model, kwargs in runs), repeats=repeats)
    totals = timed(*(run(model, kwargs, 1 + new_tokens) for model, kwargs in runs), repeats=repeats)
    return [
        (prefill, [(total - first) / new_tokens for total, first in zip(each, prefill, strict=True)])
        for prefill, each in zip(prefills, totals, strict=True)
    ]


def spread(values: list[float], scale: float = 1.0) -> str:
    """min / median / max."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{scale * low:.2f} / {scale * mid:.2f} / {scale * high:.2f}"


@torch.no_grad()
def naive_generate(model, inputs, new_tokens: int, num_world_steps: int) -> torch.Tensor:
    ids, types = inputs["input_ids"], inputs["token_type_ids"]
    for _ in range(new_tokens):
        logits = model(
            input_ids=ids, token_type_ids=types, pixel_values=inputs["pixel_values"], num_world_steps=num_world_steps
        ).logits
        next_token = logits[:, -1:].argmax(-1)
        ids, types = torch.cat([ids, next_token], 1), torch.cat([types, torch.zeros_like(next_token)], 1)
    return ids


def benchmark_size(size: str, args: argparse.Namespace) -> None:
    k, n = args.world_steps, args.new_tokens
    if size == SHIPPED:
        world, plain, inputs = build_shipped()
    else:
        world, plain, inputs = build(size, args.vocab_size if size != "test" else 0)
    if args.quantize:  # the same settings for both models
        for model in (world, plain):
            prepare_fast_decode(model, args.quantize)
    params = sum(p.numel() for p in world.parameters())
    world_tokens = (k + 1) * world.tokens_per_world_step + 2
    runs = args.repeats
    with torch.no_grad():
        (plain_prefill, plain_decode), (world_prefill, world_decode) = generation_times(
            [(plain, {}), (world, {"num_world_steps": k})], inputs, n, runs
        )
        cached, naive = timed(
            lambda: world.generate(**inputs, max_new_tokens=n, min_new_tokens=n, num_world_steps=k),
            lambda: naive_generate(world, inputs, n, k),
            repeats=runs,
        )
    median = statistics.median
    print(
        f"\n== {size}: {params / 1e6:.1f}M parameters, prompt {inputs['input_ids'].shape[1]} tokens, "
        f"{world_tokens} world tokens (k={k}), {n} new tokens, quantization {args.quantize}; "
        f"min / median / max of {runs} runs, ratio of medians"
    )
    print(f"{'':28}{'plain Gemma 3':>26}{'TheWorld':>26}{'ratio':>9}")
    print(
        f"{'decode ms/token':28}{spread(plain_decode, 1e3):>26}{spread(world_decode, 1e3):>26}"
        f"{median(world_decode) / median(plain_decode):8.3f}x"
    )
    print(
        f"{'prefill ms':28}{spread(plain_prefill, 1e3):>26}{spread(world_prefill, 1e3):>26}"
        f"{median(world_prefill) / median(plain_prefill):8.3f}x"
    )
    extra = 1e3 * (median(world_prefill) - median(plain_prefill)) / world_tokens
    print(f"{'prefill ms per world token':28}{'':26}{extra:26.3f}")
    print(f"{'':28}{'naive re-encode':>26}{'prefix KV':>26}{'speed-up':>9}")
    print(f"{f'{n} tokens, seconds':28}{spread(naive):>26}{spread(cached):>26}{median(naive) / median(cached):8.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["test", "100m"])
    parser.add_argument("--world-steps", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=32768, help="embedding rows of the 100m config")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, help="quantize both models the same way")
    args = parser.parse_args()
    threads = os.environ.get("OMP_NUM_THREADS")
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, OMP_NUM_THREADS={threads}")
    for size in args.sizes:
        benchmark_size(size, args)


if __name__ == "__main__":
    main()
