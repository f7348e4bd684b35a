"""Decode speed of the real-size preset (Gemma 3 4B with Cosmos-Predict2's VAE, random bf16 weights) on a GPU, at
batch 1, against transformers' own eager `generate` on the same weights and against the bandwidth limit.

    PYTHONPATH=src python benchmarks/gpu.py [--new-tokens 128] [--repeats 3]
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/gpu.py --dry-run   # on CPU: a 2-layer build, every code path

Every decoded token reads every weight of the language model once (the tied 262k-row embedding is the output
layer), so decode speed at batch 1 is at most bandwidth / weight bytes. The bandwidth is the device's datasheet
figure when its name is in `DATASHEET_BANDWIDTH`, and is also measured (a device-to-device copy reads and writes
each byte once). Rows, each timed by a logits processor that stamps every forward (min / median / max over
`--repeats` after a warm-up): transformers' `Gemma3ForConditionalGeneration.generate` holding TheWorld's own
weights; TheWorld's `generate` with the world off; and with one world step. The prompt is an 896 px photo and a
question (see `real_size.py`). Where CUDA is present it also prints torch.cuda.max_memory_allocated.

The dry run keeps Gemma 3's vocabulary and token ids but has 2 layers in each stack, narrow widths and a 224 px
photo, so that it checks the code paths in seconds on a CPU; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_size import photo, plain_gemma3, prompt_ids  # noqa: E402

from theworld import TheWorld  # noqa: E402
from theworld.modeling.presets import config_from_name  # noqa: E402
from theworld.modeling.random_init import build_random  # noqa: E402

# HBM bandwidth in bytes/s by (a part of) the name torch reports; the first match wins, so specific names first.
DATASHEET_BANDWIDTH = {
    "H100 PCIe": 2.0e12,
    "H100 NVL": 3.9e12,
    "H100": 3.35e12,  # SXM5, HBM3 ("NVIDIA H100 80GB HBM3")
    "H200": 4.8e12,
    "GH200": 4.0e12,
    "B200": 8.0e12,
    "A100-SXM4-80GB": 2.039e12,
    "A100-PCIE-80GB": 1.935e12,
    "A100": 1.555e12,  # 40 GB
    "L40S": 0.864e12,
    "L4": 0.3e12,
    "A10G": 0.6e12,
    "A10": 0.6e12,
    "RTX 4090": 1.008e12,
}

DRY_RUN = {
    "text_config": {
        "num_hidden_layers": 2,
        "layer_types": ["sliding_attention", "full_attention"],
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 128,
        "query_pre_attn_scalar": 128,
    },
    "vision_config": {
        "num_hidden_layers": 2,
        "image_size": 224,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 2,
    },
    "mm_tokens_per_image": 16,
    "world_image_size": 112,
}


class _Stamps:
    """A logits processor: the time after every forward, once the device has finished it."""

    def __init__(self, device: torch.device):
        self.device, self.times = device, []

    def __call__(self, input_ids, scores):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter())
        return scores


def decode_speed(model, inputs: dict, new_tokens: int, **world) -> float:
    """Tokens/s after the first token of one greedy `generate`."""
    stamps = _Stamps(inputs["input_ids"].device)
    with torch.inference_mode():
        model.generate(
            **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
            logits_processor=[stamps], **world,
        )  # fmt: skip
    return (len(stamps.times) - 1) / (stamps.times[-1] - stamps.times[0])


def measured_bandwidth(device: torch.device, megabytes: int, repeats: int = 5) -> float:
    """Bytes/s of the best of `repeats` device-to-device copies (each byte read once and written once)."""
    source = torch.empty(megabytes * 2**20, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    best = float("inf")
    for _ in range(repeats + 1):  # the first is a warm-up
        start = time.perf_counter()
        target.copy_(source)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * source.numel() / best


def datasheet_bandwidth(name: str) -> float | None:
    return next((value for key, value in DATASHEET_BANDWIDTH.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true", help="CPU, 2 layers, narrow: check every code path")
    args = parser.parse_args()
    if args.dry_run:
        args.new_tokens, args.repeats = 4, 1
    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    if device.type == "cpu" and not args.dry_run:
        parser.error("no CUDA device: this benchmark is for a GPU; --dry-run checks it on a CPU")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; CPU threads: {torch.get_num_threads()}")

    start = time.perf_counter()
    config = config_from_name("gemma-3-4b", **(DRY_RUN if args.dry_run else {}))
    model = build_random(TheWorld, config, dtype=torch.bfloat16, device=device)
    if args.dry_run:
        # The VAE (and the dynamics it feeds) in fp32: bf16 3D convolutions crawl on a CPU without bf16 instructions.
        model.world_encoder.float(), model.dynamics.float()
    plain = plain_gemma3(model)
    print(f"build: {time.perf_counter() - start:.1f} s (random bf16 weights)")
    weight_bytes = sum(p.numel() * p.element_size() for p in model.model.language_model.parameters())
    print(f"language model weights read per decoded token: {weight_bytes / 1e9:.3f} GB")

    ids = prompt_ids(model.config)
    input_ids = torch.tensor([ids], device=device)
    inputs = {
        "input_ids": input_ids,
        "pixel_values": photo(model.config.vision_config.image_size).to(device, torch.bfloat16),
        "token_type_ids": (input_ids == model.config.image_token_id).long(),
        "attention_mask": torch.ones_like(input_ids),
    }
    rows = [
        ("transformers generate", plain, {}),
        ("TheWorld generate, world off", model, {"skip_world_tokens": True}),
        ("TheWorld generate, 1 world step", model, {"num_world_steps": 1}),
    ]
    copy_bandwidth = measured_bandwidth(device, 16 if args.dry_run else 1024)
    sheet = datasheet_bandwidth(name) if device.type == "cuda" else None
    bandwidth = sheet or copy_bandwidth
    limit = bandwidth / weight_bytes
    source = "datasheet" if sheet else "measured copy"
    print(f"bandwidth: datasheet {sheet / 1e12 if sheet else float('nan'):.2f} TB/s, measured copy "
          f"{copy_bandwidth / 1e12:.3f} TB/s; bandwidth limit ({source}): {limit:.0f} tok/s")  # fmt: skip
    print(f"prompt: {len(ids)} tokens; {args.new_tokens} new tokens, greedy, batch 1; {args.repeats} repeats\n")
    print(f"| {'row':32s} | tok/s min | median | max | fraction of the limit (median) |")
    print(f"|{'-' * 34}|-----------|--------|-----|--------------------------------|")
    for label, runner, world in rows:
        decode_speed(runner, inputs, 2, **world)  # warm-up: kernels, allocator
        speeds = [decode_speed(runner, inputs, args.new_tokens, **world) for _ in range(args.repeats)]
        median = statistics.median(speeds)
        print(f"| {label:32s} | {min(speeds):9.1f} | {median:6.1f} | {max(speeds):5.1f} | {median / limit:30.2f} |")
    if device.type == "cuda":
        print(f"\ntorch.cuda.max_memory_allocated: {torch.cuda.max_memory_allocated(device) / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
