"""Peak bytes on the execution device for each `--offload-*` combination Cosmos documents: Cosmos-Predict2 2B
Video2World, Cosmos-Predict2.5 2B and TheWorld at its gemma-3-4b preset, at their real sizes, without weights.

    OMP_NUM_THREADS=1 python benchmarks/offload_memory.py [--height 704 --width 1280 --frames 93] [--stages]
    python benchmarks/offload_memory.py --measure      # on a GPU: also torch.cuda.max_memory_allocated

Weights: every part is built on the meta device from its public config and sized with accelerate's
`compute_module_sizes`, in bf16 as Cosmos runs them (the guardrail's SigLIP, classifier and face detector in fp32,
as Cosmos loads them). Activations: each stage runs once on fake tensors (`FakeTensorMode`: real shapes and code
paths, no compute, no memory) while the bytes of the live tensors are counted; the stage's peak adds to the
weights resident during it, which `theworld.world.offload_plan.walk` gives for each combination.
"""

import argparse
import os
import sys
from pathlib import Path

import torch
from accelerate import init_empty_weights
from accelerate.utils import compute_module_sizes
from torch._subclasses.fake_tensor import FakeTensorMode

from theworld.world.backends import OffloadOptions
from theworld.world.offload_plan import FAMILIES, cosmos_stages, theworld_stages, walk

from real_parts import DIT, GUARD_TOKENS, TEXT_TOKENS, cosmos_parts, default_dtype, peak_of, theworld_4b  # isort: skip

GB = 1e9
# Cosmos-Predict1's table rows (each offloads what the one before did, and one part more), as `theworld world` flags.
ROWS = [
    ("No offloading", {}),
    ("Offload guardrails", {"guardrail": True}),
    ("Offload guardrails & text encoder", {"guardrail": True, "text_encoder": True}),
    (
        "Offload guardrails & text encoder & tokenizer",
        {"guardrail": True, "text_encoder": True, "tokenizer": True, "decoder": True},
    ),
    (
        "Offload guardrails & text encoder & tokenizer & diffusion model",
        {"guardrail": True, "text_encoder": True, "tokenizer": True, "decoder": True, "model": True},
    ),
]
FLAGS = {
    "guardrail": "--offload-guardrail",
    "text_encoder": "--offload-text-encoder",
    "tokenizer": "--offload-tokenizer",
    "decoder": "--offload-decoder",
    "model": "--offload-model",
}


def size(module, dtype=torch.bfloat16) -> int:
    return compute_module_sizes(module, dtype=dtype)[""]


def cosmos_sizes(parts: dict) -> dict[str, int]:
    vae = parts["vae"]
    sizes = dict(
        text_encoder=size(parts["text_encoder"]),
        model=size(parts["model"]),
        tokenizer=size(vae.encoder),
        decoder=size(vae.decoder),
    )
    sizes["vae_other"] = size(vae) - sizes["tokenizer"] - sizes["decoder"]
    sizes["guardrail"] = size(parts["llama_guard"]) + size(parts["video_filter"], torch.float32)
    return sizes


def cosmos_activations(family: str, height: int, width: int, frames: int) -> dict[str, int]:
    """Each stage's peak live bytes on fake tensors at the given size (batch 1; guidance runs its two passes
    one after the other, so one pass's peak, with both prompts' embeddings alive)."""
    latent_t, h, w = (frames - 1) // 4 + 1, height // 8, width // 8
    with FakeTensorMode():
        parts = cosmos_parts(family)
        # The padding mask's resize needs torchvision; one input channel less changes no activation that counts.
        with default_dtype(torch.bfloat16):
            dit = type(parts["model"])(**dict(DIT[family], concat_padding_mask=False))
        text, vae, guard, video_filter = (
            parts["text_encoder"],
            parts["vae"],
            parts["llama_guard"],
            parts["video_filter"],
        )
        ids = lambda n: torch.zeros(1, n, dtype=torch.long)  # noqa: E731
        qwen = family == "Cosmos2_5_PredictBasePipeline"
        embed_dim = 100352 if qwen else 1024

        def encode_text():
            if not qwen:
                return text(ids(TEXT_TOKENS)).last_hidden_state
            states = text(ids(TEXT_TOKENS), output_hidden_states=True).hidden_states[1:]
            return torch.cat([(s - s.mean(-1, keepdim=True)) / (s.std(-1, keepdim=True) + 1e-8) for s in states], -1)

        def denoise():
            prompts = [torch.zeros(1, TEXT_TOKENS, embed_dim, dtype=torch.bfloat16) for _ in range(2)]
            x = torch.zeros(1, 16, latent_t, h, w, dtype=torch.bfloat16)
            return dit(
                hidden_states=x,
                timestep=torch.zeros(1, 1, latent_t, 1, 1, dtype=torch.bfloat16),
                encoder_hidden_states=prompts[0],
                fps=16,
                condition_mask=torch.zeros_like(x[:, :1]),
                padding_mask=torch.zeros(1, 1, height, width, dtype=torch.bfloat16),
                return_dict=False,
            )

        def check_video():
            video_filter.eval()
            a = video_filter["siglip"].vision_model(torch.zeros(1, 3, 384, 384)).pooler_output
            return a, video_filter["faces"](torch.zeros(1, 3, height, width)).pooler_output

        video = lambda: torch.zeros(1, 3, frames, height, width, dtype=torch.bfloat16)  # noqa: E731
        return {
            "guardrail: prompt": peak_of(lambda: guard(ids(GUARD_TOKENS), logits_to_keep=1)),
            "text encoding": peak_of(encode_text),
            "VAE encode": peak_of(lambda: vae.encode(video()).latent_dist.mode()),
            "denoising": peak_of(denoise),
            "VAE decode": peak_of(lambda: vae.decode(torch.zeros(1, 16, latent_t, h, w, dtype=torch.bfloat16)).sample),
            "guardrail: video": peak_of(check_video),
        }


def theworld_sizes(model) -> dict[str, int]:
    vae = model.world_encoder.vae
    sizes = dict(tokenizer=size(vae.encoder), decoder=size(vae.decoder))
    sizes["model"] = size(model) - sizes["tokenizer"] - sizes["decoder"]
    return sizes


def theworld_activations(world_steps: int) -> tuple[dict[str, int], int]:
    """`ask` imagining `world_steps` steps: one frame through the world encoder; then the larger of the vision
    tower on one image and the language model's prefill of the whole prompt (image, world and 32 text tokens)."""
    with FakeTensorMode():
        model = theworld_4b().eval()
        config = model.config
        size_px = config.vision_config.image_size
        prompt = config.mm_tokens_per_image + (1 + world_steps) * model.tokens_per_world_step + 2 + 32
        frame = torch.zeros(1, 1, 3, config.world_image_size, config.world_image_size, dtype=torch.bfloat16)
        hidden = torch.zeros(1, prompt, config.text_config.hidden_size, dtype=torch.bfloat16)
        return {
            "world encode": peak_of(lambda: model.world_encoder.encode(frame)),
            "answer": max(
                peak_of(lambda: model.model.vision_tower(torch.zeros(1, 3, size_px, size_px, dtype=torch.bfloat16))),
                peak_of(
                    lambda: model.lm_head(model.model.language_model(inputs_embeds=hidden).last_hidden_state[:, -1:])
                ),
            ),
        }, prompt


class RealSizeGuardrail(torch.nn.Module):
    """Cosmos' guardrail models as a `Guardrail` checker: each check runs the models a real one runs."""

    def __init__(self, llama_guard, video_filter):
        super().__init__()
        self.llama_guard, self.video_filter = llama_guard, video_filter.eval()

    def check_text_safety(self, prompt) -> bool:
        device = next(self.parameters()).device
        self.llama_guard(torch.zeros(1, GUARD_TOKENS, dtype=torch.long, device=device), logits_to_keep=1)
        return True

    def check_video_safety(self, frames):
        device = next(self.parameters()).device
        self.video_filter["siglip"].vision_model(torch.zeros(1, 3, 384, 384, device=device))
        self.video_filter["faces"](torch.zeros(1, 3, *frames.shape[1:3], device=device))
        return frames


def measure(family: str, flags: dict, args) -> int:
    """One `theworld world` sample (prompt check, generate, video check) at real size with random bf16 weights on
    the GPU, parts placed and offloaded by `CosmosDiffusionBackend`: torch.cuda.max_memory_allocated."""
    import diffusers
    import numpy as np

    from theworld.modeling.random_init import materialise_random
    from theworld.world.backends import WorldRequest
    from theworld.world.diffusion import CosmosDiffusionBackend
    from theworld.world.guardrail import Guardrail

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_cosmos import _qwen_text_encoder, _t5_text_encoder  # tokenizers without a download

    predict2 = family == "Cosmos2VideoToWorldPipeline"
    with init_empty_weights(include_buffers=False):  # buffers (positions, RoPE frequencies) stay computed
        parts = cosmos_parts(family)
    for name, module in parts.items():
        materialise_random(module, torch.float32 if name == "video_filter" else torch.bfloat16)
    scheduler = (
        diffusers.FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True)
        if predict2
        else diffusers.UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction")
    )
    offload = OffloadOptions(**flags)
    guardrail = Guardrail(
        checker=RealSizeGuardrail(parts["llama_guard"], parts["video_filter"]), offload=offload.guardrail
    )
    tokenizer = (_t5_text_encoder if predict2 else _qwen_text_encoder)()[0]
    pipe = getattr(diffusers, family)(
        text_encoder=parts["text_encoder"],
        tokenizer=tokenizer,
        transformer=parts["model"],
        vae=parts["vae"],
        scheduler=scheduler,
        safety_checker=guardrail,
    )
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    backend = CosmosDiffusionBackend.from_pipeline(pipe, family, offload, torch.device("cuda"))
    image = np.zeros((1, args.height, args.width, 3), dtype=np.uint8)
    request = WorldRequest(
        "image2world", "a robot arm", args.frames, args.height, args.width, 16, 0, input_frames=image, num_steps=2
    )
    with torch.no_grad():
        guardrail.blocked_reason(request.prompt)
        guardrail.check_video_safety(backend.generate(request))
    return torch.cuda.max_memory_allocated()


def table(columns: dict, stages_out: bool) -> None:
    print("| Offloading strategy | `theworld world` flags | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for label, flags in ROWS:
        offload = OffloadOptions(**flags)
        cells = []
        for stages, sizes, acts, always in columns.values():
            memory = walk(stages, sizes, offload, acts, always)
            top = max(memory, key=lambda m: m.total_bytes)
            cells.append(f"{top.total_bytes / GB:.1f} GB ({top.stage})")
        print(f"| {label} | {' '.join(FLAGS[f] for f in flags) or '(none)'} | " + " | ".join(cells) + " |")
    if stages_out:
        for name, (stages, sizes, acts, always) in columns.items():
            print(f"\n{name}: bytes per stage (weights + activations), GB")
            for label, flags in ROWS:
                memory = walk(stages, sizes, OffloadOptions(**flags), acts, always)
                print(
                    f"  {label}: "
                    + ", ".join(f"{m.stage} {m.weight_bytes / GB:.2f}+{m.activation_bytes / GB:.2f}" for m in memory)
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=704)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--frames", type=int, default=93)
    parser.add_argument("--world-steps", type=int, default=4, help="TheWorld's imagined steps (the preset's most)")
    parser.add_argument("--stages", action="store_true", help="also print every stage's bytes")
    parser.add_argument("--measure", action="store_true", help="on a GPU, also run each combination and measure")
    args = parser.parse_args()
    if args.height % 16 or args.width % 16 or (args.frames - 1) % 4:
        parser.error(f"{args.height}x{args.width}, {args.frames} frames: use multiples of 16 and 4k+1 frames (93)")
    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()} (OMP_NUM_THREADS={omp}); ", end="")
    print(f"{args.height}x{args.width}, {args.frames} frames; GB = 1e9 bytes")

    columns = {}
    for family, label in zip(FAMILIES, ("Predict2 2B Video2World", "Predict2.5 2B"), strict=True):
        with init_empty_weights():
            sizes = cosmos_sizes(cosmos_parts(family))
        acts = cosmos_activations(family, args.height, args.width, args.frames)
        columns[label] = (cosmos_stages(family), sizes, acts, ["vae_other"])
        print(f"{label}: " + ", ".join(f"{k} {v / GB:.2f} GB" for k, v in sizes.items()))
        print("  activations: " + ", ".join(f"{k} {v / GB:.2f} GB" for k, v in acts.items()))
    sizes = theworld_sizes(theworld_4b(empty=True))
    acts, prompt = theworld_activations(args.world_steps)
    columns[f"TheWorld 4B (ask, {args.world_steps} world steps)"] = (theworld_stages(), sizes, acts, [])
    print("TheWorld 4B: " + ", ".join(f"{k} {v / GB:.2f} GB" for k, v in sizes.items()) + f"; prompt {prompt} tokens")
    print("  activations: " + ", ".join(f"{k} {v / GB:.2f} GB" for k, v in acts.items()))
    print()
    table(columns, args.stages)
    if not (args.measure and torch.cuda.is_available()):
        why = "pass --measure to run them on this GPU" if torch.cuda.is_available() else "no GPU here to measure on"
        print(f"\nComputed only ({why}): nothing above was measured with torch.cuda.max_memory_allocated.")
        return
    print(f"\nMeasured on {torch.cuda.get_device_name()}: torch.cuda.max_memory_allocated over one image2world sample")
    print("(prompt check, generate with 2 denoising steps, video check), random bf16 weights, parts placed in it.")
    print("| Offloading strategy | Predict2 2B Video2World | Predict2.5 2B |")
    print("|---|---|---|")
    for label, flags in ROWS:
        peaks = [measure(family, flags, args) / GB for family in FAMILIES]
        print(f"| {label} | " + " | ".join(f"{peak:.1f} GB" for peak in peaks) + " |")


if __name__ == "__main__":
    main()
