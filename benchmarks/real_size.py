"""TheWorld at its real size: Gemma 3 4B with Cosmos-Predict2's VAE (`config_from_name("gemma-3-4b")`), random bf16
weights, answering a question about a real photo at 896 x 896, against plain Gemma 3 4B on the same weights.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/real_size.py [--threads 1] [--new-tokens 8] [--steps 0 1]
    PYTHONPATH=src python benchmarks/real_size.py --paper     # the figures on paper, from the meta device (seconds)

The run prints parameters per part, world tokens per frame and per step, build time, and for each row (plain Gemma 3
4B: transformers' `Gemma3ForConditionalGeneration` holding TheWorld's own weight tensors; TheWorld with each
`--steps`) the prefill time (image, world and prompt, up to the first token), the decode speed, and peak RSS.
Prefill and decode come from one `generate` call per row: a logits processor stamps the time after every forward.
The photo is scikit-learn's `china.jpg` (installed with librosa), centre-cropped, resized to 896 x 896 by Gemma 3's
image processor. The VAE and the dynamics run in fp32 (diffusers keeps Wan's VAE in fp32; bf16 3D convolutions
crawl on a CPU without bf16 instructions). Gemma 3's tokenizer is not here, so the question is a fixed run of token
ids in Gemma 3's chat layout; the answer of random weights means nothing, its cost is the point.

`--paper` counts (no weights, no compute): world tokens and prefill tokens for k = 0..4, FLOPs of each part (torch's
FlopCounterMode on the meta device) and bytes, and the decode bound on a GPU (`--bandwidth`, bytes/s).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from accelerate import init_empty_weights
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode
from transformers import Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, LogitsProcessor

from theworld import TheWorld
from theworld.modeling.presets import config_from_name
from theworld.modeling.random_init import build_random

QUESTION_TOKENS = 12  # "What would happen next if the wind picked up?" is about a dozen Gemma 3 tokens
H100_SXM_BANDWIDTH = 3.35e12  # bytes/s, HBM3
H100_SXM_BF16 = 989e12  # dense bf16 FLOP/s, the datasheet's peak


def prompt_ids(config, question_tokens: int = QUESTION_TOKENS, seed: int = 0) -> list[int]:
    """<bos><start_of_turn>user\\n <image block> question<end_of_turn>\\n<start_of_turn>model\\n, with Gemma 3's
    special-token ids and a fixed run of ordinary ids for the words."""
    words = torch.randint(1000, 200_000, (question_tokens + 2,), generator=torch.Generator().manual_seed(seed))
    user, model, newline = int(words[0]), int(words[1]), 107
    image = [config.boi_token_id] + [config.image_token_id] * config.mm_tokens_per_image + [config.eoi_token_id]
    question = words[2:].tolist()
    return [2, 105, user, newline, *image, *question, 106, newline, 105, model, newline]


def photo(size: int) -> torch.Tensor:
    """A real photo as Gemma 3's image processor prepares it: (1, 3, size, size) in [-1, 1]."""
    from sklearn.datasets import load_sample_image

    array = load_sample_image("china.jpg")
    side = min(array.shape[:2])
    top, left = (array.shape[0] - side) // 2, (array.shape[1] - side) // 2
    image = Image.fromarray(np.ascontiguousarray(array[top : top + side, left : left + side]))
    processor = Gemma3ImageProcessorPil(
        size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_pan_and_scan=False
    )
    return processor(images=image, return_tensors="pt")["pixel_values"]


def parts(model: TheWorld) -> dict[str, int]:
    """Parameters of each part (the tied embedding counted once, in the language model)."""
    counts = {
        "language model (embedding = output layer)": model.model.language_model,
        "vision tower (SigLIP)": model.model.vision_tower,
        "image projector": model.model.multi_modal_projector,
        "VAE encoder (runs)": model.world_encoder.vae.encoder,
        "VAE decoder (drawing only)": model.world_encoder.vae.decoder,
        "dynamics": model.dynamics,
        "world projector": model.world_projector,
    }
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in counts.items()}
    counts["VAE rest (quant convs)"] = sum(p.numel() for p in model.world_encoder.parameters()) - sum(
        counts[name] for name in ("VAE encoder (runs)", "VAE decoder (drawing only)")
    )
    counts["total"] = sum({id(p): p.numel() for p in model.parameters()}.values())
    return counts


class _Stamps(LogitsProcessor):
    """Records the time after every forward of `generate` (it runs once per new token)."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, input_ids, scores):
        self.times.append(time.perf_counter())
        return scores


def timed_generate(model, inputs: dict, new_tokens: int, **world) -> tuple[float, float]:
    """(prefill seconds up to the first token, decode tokens/s after it) of one greedy `generate`."""
    stamps = _Stamps()
    start = time.perf_counter()
    with torch.inference_mode():
        model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            logits_processor=[stamps],
            **world,
        )
    prefill = stamps.times[0] - start
    decode = (len(stamps.times) - 1) / (stamps.times[-1] - stamps.times[0]) if len(stamps.times) > 1 else 0.0
    return prefill, decode


def plain_gemma3(model: TheWorld) -> Gemma3ForConditionalGeneration:
    """Gemma 3 holding `model`'s own language model, vision tower and output layer: no weight is copied."""
    with init_empty_weights(include_buffers=False):
        plain = Gemma3ForConditionalGeneration(model.config.to_gemma3())
    plain.model, plain.lm_head = model.model, model.lm_head
    plain.generation_config = model.generation_config
    return plain.eval()


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux reports KiB


def run(args) -> None:
    torch.set_num_threads(args.threads)
    print(f"threads: {torch.get_num_threads()}; peak RSS after imports: {peak_rss_gb():.2f} GB")
    start = time.perf_counter()
    model = build_random(TheWorld, config_from_name("gemma-3-4b"))
    # The VAE (and the dynamics it feeds) in fp32, as diffusers' Wan pipelines keep the VAE: bf16 3D convolutions
    # crawl on a CPU without bf16 instructions.
    model.world_encoder.float(), model.dynamics.float()
    print(f"build (meta device, then random bf16; VAE and dynamics fp32): {time.perf_counter() - start:.1f} s; "
          f"peak RSS {peak_rss_gb():.2f} GB")  # fmt: skip
    for name, count in parts(model).items():
        print(f"  {name:44s} {count / 1e6:10.1f} M")
    frame = model.tokens_per_world_step
    print(f"world tokens: {frame} per frame; a world block of k steps holds (k + 1) x {frame} + 2")
    ids = prompt_ids(model.config)
    input_ids = torch.tensor([ids])
    inputs = {
        "input_ids": input_ids,
        "pixel_values": photo(model.config.vision_config.image_size).to(torch.bfloat16),
        "token_type_ids": (input_ids == model.config.image_token_id).long(),
        "attention_mask": torch.ones_like(input_ids),
    }
    print(f"prompt: {len(ids)} tokens (256 of them the image's); {args.new_tokens} new tokens, greedy\n")
    print(f"| {'row':32s} | prefill tokens | prefill s | decode tok/s | prefill / plain | peak RSS GB |")
    print(f"|{'-' * 34}|----------------|-----------|--------------|-----------------|-------------|")
    rows = [("plain Gemma 3 4B (transformers)", plain_gemma3(model), {}, len(ids))]
    for steps in args.steps:
        extra = (steps + 1) * frame + 2
        rows.append((f"TheWorld, num_world_steps={steps}", model, {"num_world_steps": steps}, len(ids) + extra))
    baseline = None
    for name, runner, world, length in rows:
        prefill, decode = timed_generate(runner, inputs, args.new_tokens, **world)
        baseline = baseline or prefill
        print(
            f"| {name:32s} | {length:14d} | {prefill:9.1f} | {decode:12.3f} | {prefill / baseline:15.2f} | "
            f"{peak_rss_gb():11.2f} |",
            flush=True,
        )


def flops(fn, *args, **kwargs) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args, **kwargs)
    return counter.get_total_flops()


def paper(args) -> None:
    """The world's cost at real size, counted on the meta device."""
    with init_empty_weights(include_buffers=True):
        model = TheWorld(config_from_name("gemma-3-4b"))
    model.tie_weights()
    model.to(torch.bfloat16)
    config, text = model.config, model.config.text_config
    counts = parts(model)
    language = counts["language model (embedding = output layer)"]
    base = len(prompt_ids(config))
    frame = model.tokens_per_world_step
    meta = {"device": "meta", "dtype": torch.bfloat16}
    size, latent = config.world_image_size, model.world_encoder.latent_size
    vae = flops(model.world_encoder.encode, torch.zeros(1, 1, 3, size, size, **meta))
    dynamics = flops(model.dynamics.step, torch.zeros(1, 1, 16, latent, latent, **meta))
    projector = flops(model.world_projector, torch.zeros(1, 1, 16, latent, latent, **meta))
    image = config.vision_config.image_size
    vision = flops(model.model.get_image_features, torch.zeros(1, 3, image, image, **meta))

    def prefill(length: int, logits: int) -> int:  # the language model over the prompt, the output layer at `logits`
        embeds = torch.zeros(1, length, text.hidden_size, **meta)
        mask = torch.zeros(1, 1, length, length, **meta)  # given, since building one reads values meta lacks
        hidden = model.model.language_model(
            inputs_embeds=embeds,
            attention_mask={"full_attention": mask, "sliding_attention": mask},
            position_ids=torch.arange(length, device="meta")[None],
            use_cache=False,
        ).last_hidden_state
        return model.lm_head(hidden[:, -logits:])

    kv_per_token = 2 * text.num_hidden_layers * text.num_key_value_heads * text.head_dim * 2  # K and V, bf16
    weight_bytes = 2 * language  # what every decoded token reads
    print(f"Gemma 3 4B + Cosmos-Predict2 VAE, bf16; prompt {base} tokens (question {QUESTION_TOKENS}, image 256)")
    print(f"parameters: {counts['total'] / 1e9:.3f} B in all; the language model {language / 1e9:.3f} B")
    print(f"world: {size} px -> {latent} x {latent} x 16 latent -> {frame} world tokens per frame\n")
    print("| part | runs | GFLOP | weights MB (bf16) |\n|---|---|---|---|")
    print(f"| vision tower + image projector ({image} px) | once per image | {vision / 1e9:.0f} | "
          f"{2 * (counts['vision tower (SigLIP)'] + counts['image projector']) / 1e6:.0f} |")  # fmt: skip
    print(f"| VAE encoder ({size} px frame) | once per image | {vae / 1e9:.0f} | "
          f"{2 * counts['VAE encoder (runs)'] / 1e6:.0f} |")  # fmt: skip
    print(f"| dynamics | once per world step | {dynamics / 1e9:.1f} | {2 * counts['dynamics'] / 1e6:.1f} |")
    print(f"| world projector | once per frame | {projector / 1e9:.2f} | {2 * counts['world projector'] / 1e6:.1f} |")
    # generate asks both models for the last position's logits only (`logits_to_keep`).
    print("\n| k | world tokens | prefill tokens | prefill TFLOP (every part) | + per step | KV cache MB | "
          "decode bound tok/s |\n|---|---|---|---|---|---|---|")  # fmt: skip
    previous = None
    for steps in range(config.max_world_steps + 1):
        world = (steps + 1) * frame + 2
        length = base + world
        total = flops(prefill, length, 1) + vae + vision + steps * dynamics + (steps + 1) * projector
        kv = length * kv_per_token
        bound = args.bandwidth / (weight_bytes + kv)
        step = "" if previous is None else f"{(total - previous) / 1e12:.2f}"
        print(f"| {steps} | {world} | {length} | {total / 1e12:.2f} | {step} | {kv / 1e6:.1f} | {bound:.0f} |")
        previous = total
    plain = flops(prefill, base, 1) + vision
    print(f"\nplain Gemma 3 4B: {base} prefill tokens, {plain / 1e12:.2f} TFLOP (output layer at the last one only)")
    head = flops(model.lm_head, torch.zeros(1, 1, text.hidden_size, **meta))
    print(f"the output layer: {head / 1e9:.2f} GFLOP per position, computed at the last prompt position only")
    print(f"decode bound: {weight_bytes / 1e9:.2f} GB of weights per token at {args.bandwidth / 1e12:.2f} TB/s -> "
          f"{args.bandwidth / weight_bytes:.0f} tok/s (KV cache: {kv_per_token / 1e3:.0f} kB per token)")  # fmt: skip
    print(f"prefill at the H100 SXM's dense bf16 peak ({H100_SXM_BF16 / 1e12:.0f} TFLOP/s): at least "
          f"{plain / H100_SXM_BF16 * 1e3:.1f} ms plain, {previous / H100_SXM_BF16 * 1e3:.1f} ms with k = "
          f"{config.max_world_steps}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 1], help="num_world_steps of the TheWorld rows")
    parser.add_argument("--paper", action="store_true", help="count FLOPs and bytes on the meta device; no compute")
    parser.add_argument("--bandwidth", type=float, default=H100_SXM_BANDWIDTH, help="GPU bytes/s for --paper")
    parser.add_argument(
        "--dynamics",
        choices=["conv", "cosmos"],
        default="conv",
        help="cosmos: Cosmos-Predict2 2B's transformer as the dynamics (benchmarks/cosmos_dynamics.py's figures)",
    )
    args = parser.parse_args()
    if args.dynamics == "cosmos":
        import cosmos_dynamics  # benchmarks/cosmos_dynamics.py, next to this script

        return cosmos_dynamics.report(paper=args.paper)
    if args.new_tokens < 2:
        parser.error("--new-tokens must be 2 or more (decode speed needs a token after the first)")
    paper(args) if args.paper else run(args)


if __name__ == "__main__":
    main()
