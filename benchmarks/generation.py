"""World-aware generation vs plain Gemma 3, and prefix-KV generation vs naive re-encoding, side by side.

    OMP_NUM_THREADS=1 python benchmarks/generation.py            # tiny and ~100M random configs
    OMP_NUM_THREADS=1 python benchmarks/generation.py --sizes test
    OMP_NUM_THREADS=1 python benchmarks/generation.py --sizes shipped   # TheWorld-tiny, its trained weights

Every figure in a row is measured in the same run, on the same weights and prompt:
- decode ms/token of plain Gemma 3 (`Gemma3ForConditionalGeneration`) and of TheWorld with k world steps;
- prefill ms, and the extra prefill cost per world token;
- 64 new tokens through TheWorld's generate (world computed once, read from the KV cache) against a naive loop
  that re-encodes the whole sequence, world included, for every token.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, Gemma3ForConditionalGeneration

import theworld
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.presets import config_from_name
from theworld.modeling.processing import build_processor, train_tokenizer

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


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def generation_times(model, inputs, new_tokens: int, repeats: int, **kwargs) -> tuple[float, float]:
    """(prefill seconds, decode seconds per token), from generate with 1 and with 1 + new_tokens tokens."""

    def run(n):
        return lambda: model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, **kwargs)

    prefill = timed(run(1), repeats)
    total = timed(run(1 + new_tokens), repeats)
    return prefill, (total - prefill) / new_tokens


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
    params = sum(p.numel() for p in world.parameters())
    world_tokens = (k + 1) * world.tokens_per_world_step + 2
    with torch.no_grad():
        plain_prefill, plain_decode = generation_times(plain, inputs, n, args.repeats)
        world_prefill, world_decode = generation_times(world, inputs, n, args.repeats, num_world_steps=k)
        cached = timed(lambda: world.generate(**inputs, max_new_tokens=n, min_new_tokens=n, num_world_steps=k), 1)
        naive = timed(lambda: naive_generate(world, inputs, n, k), 1)
    weight_bytes = sum(p.numel() * p.element_size() for p in plain.parameters())
    print(
        f"\n== {size}: {params / 1e6:.1f}M parameters, prompt {inputs['input_ids'].shape[1]} tokens, "
        f"{world_tokens} world tokens (k={k}), {n} new tokens"
    )
    print(f"{'':34}{'plain Gemma 3':>16}{'TheWorld':>16}{'ratio':>10}")
    print(
        f"{'decode ms/token':34}{1e3 * plain_decode:16.2f}{1e3 * world_decode:16.2f}"
        f"{world_decode / plain_decode:10.3f}x"
    )
    print(
        f"{'prefill ms':34}{1e3 * plain_prefill:16.2f}{1e3 * world_prefill:16.2f}{world_prefill / plain_prefill:10.3f}x"
    )
    print(f"{'prefill ms per world token':34}{'':16}{1e3 * (world_prefill - plain_prefill) / world_tokens:16.3f}")
    print(
        f"{'decode weight bandwidth GB/s':34}{weight_bytes / plain_decode / 1e9:16.2f}"
        f"{weight_bytes / world_decode / 1e9:16.2f}"
    )
    print(f"{'':34}{'naive re-encode':>16}{'prefix KV':>16}{'speed-up':>10}")
    print(f"{f'{n} tokens, seconds':34}{naive:16.2f}{cached:16.2f}{naive / cached:10.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["test", "100m"])
    parser.add_argument("--world-steps", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=32768, help="embedding rows of the 100m config")
    args = parser.parse_args()
    threads = os.environ.get("OMP_NUM_THREADS")
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, OMP_NUM_THREADS={threads}")
    for size in args.sizes:
        benchmark_size(size, args)


if __name__ == "__main__":
    main()
