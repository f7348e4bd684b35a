"""What a world step costs with Cosmos-Predict2 2B as the dynamics, at the gemma-3-4b preset's world resolution.

    OMP_NUM_THREADS=1 python benchmarks/cosmos_dynamics.py [--layers 1 2] [--repeats 3] [--steps 1 4] [--paper]

- Parameters: the Cosmos-Predict2-2B-Video2World transformer, built from its diffusers config (the one diffusers'
  scripts/convert_cosmos_to_diffusers.py writes) on the meta device: counted exactly, no weights.
- FLOPs on paper (torch's FlopCounterMode on the meta device), per denoising step and per imagining of k world
  steps (the k future latent frames are denoised together with the current one: 1 + k latent frames of 28 x 28
  tokens at 448 px).
- CPU time of one denoising step through TheWorld's `CosmosDynamics.rollout` (diffusers' pipeline loop), at the
  full width and the real token count but with `--layers` of the 28 blocks (random weights): the per-block time is
  the difference, and the full model's time is extrapolated from it (said as such in the output).
"""

import argparse
import os
import statistics
import time

import diffusers
import torch
from accelerate import init_empty_weights
from diffusers import CosmosTransformer3DModel
from torch.utils.flop_counter import FlopCounterMode

from theworld.modeling.cosmos_dynamics import CosmosDynamics

from real_parts import DIT_2B  # isort: skip  (benchmarks/real_parts.py, next to this script)

# Cosmos-Predict2-2B-Video2World's transformer: the config benchmarks/real_parts.py takes from diffusers'
# conversion script.
PREDICT2_2B = DIT_2B
# Predict2's scheduler as its pipeline configures it.
SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "use_karras_sigmas": True, "shift": 1.0}
WORLD_IMAGE_SIZE, VAE_FACTOR, TEXT_TOKENS = 448, 8, 512  # the gemma-3-4b preset; Wan2.1; T5 prompt length
PIPELINE_STEPS = 35  # Cosmos2VideoToWorldPipeline's default num_inference_steps


def flops_per_forward(config: dict, latent_frames: int, latent_size: int) -> int:
    """FLOPs of one transformer call on 1 + k latent frames and the 512-token prompt, counted by torch's
    FlopCounterMode on the meta device (no weights, no compute)."""
    with init_empty_weights(include_buffers=True):
        transformer = CosmosTransformer3DModel.from_config({**config, "concat_padding_mask": False})
    meta = {"device": "meta", "dtype": torch.bfloat16}
    latents = torch.zeros(1, config["out_channels"], latent_frames, latent_size, latent_size, **meta)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        transformer.to(torch.bfloat16)(
            hidden_states=latents,
            timestep=torch.zeros(1, 1, latent_frames, 1, 1, **meta),
            encoder_hidden_states=torch.zeros(1, TEXT_TOKENS, config["text_embed_dim"], **meta),
            fps=16,
            condition_mask=torch.zeros(1, 1, latent_frames, latent_size, latent_size, **meta),
            padding_mask=torch.zeros(1, 1, latent_size * VAE_FACTOR, latent_size * VAE_FACTOR, **meta),
            return_dict=False,
        )
    return counter.get_total_flops()


def time_denoising_step(layers: int, latent_size: int, world_steps: int, repeats: int) -> dict[str, list[float]]:
    """Wall and CPU seconds of one denoising step (rollout with denoising_steps=1) with `layers` blocks. On a
    shared machine the CPU time (this process's) is the steadier measure of the work; both are printed."""
    config = {**PREDICT2_2B, "num_layers": layers, "concat_padding_mask": False}  # its resize needs torchvision
    torch.manual_seed(0)
    dynamics = CosmosDynamics(16, config, SCHEDULER, denoising_steps=1).eval()
    latents = torch.randn(1, 1, 16, latent_size, latent_size)
    times = {"wall": [], "cpu": []}
    with torch.no_grad():
        dynamics.rollout(latents, world_steps)  # warm-up
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            dynamics.rollout(latents, world_steps)
            times["cpu"].append(time.process_time() - cpu)
            times["wall"].append(time.perf_counter() - wall)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, nargs=2, default=[1, 2], help="two reduced depths to time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 3, 4], help="world steps k to cost")
    parser.add_argument("--timed-steps", type=int, default=1, help="the k timed on CPU")
    parser.add_argument("--paper", action="store_true", help="parameters and FLOPs only (seconds; no CPU timing)")
    args = parser.parse_args()
    report(args.layers, args.repeats, args.steps, args.timed_steps, args.paper)


def report(
    layers: list[int] = (1, 2), repeats: int = 3, steps: list[int] = (1, 2, 3, 4), k: int = 1, paper: bool = False
) -> None:
    """Print the figures (see the module); `benchmarks/real_size.py --dynamics cosmos` calls this too."""
    diffusers.utils.logging.set_verbosity_error()  # its note on keeping the position embedding in fp32
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()} "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); machine shared, timings noisy"
    )
    with init_empty_weights():
        transformer = CosmosTransformer3DModel.from_config(PREDICT2_2B)
    params = sum(p.numel() for p in transformer.parameters())
    latent_size = WORLD_IMAGE_SIZE // VAE_FACTOR
    print(f"Cosmos-Predict2-2B-Video2World transformer: {params / 1e9:.3f}B parameters ({params:,})")
    print(
        f"world resolution {WORLD_IMAGE_SIZE} px -> latent 16 x {latent_size} x {latent_size} -> "
        f"{(latent_size // 2) ** 2} tokens per latent frame (patch 2 x 2)"
    )
    print(f"\n{'k':>3s} {'latent frames':>14s} {'TFLOP/denoise step':>19s} {'TFLOP/imagining (35 steps)':>27s}")
    for world_steps in steps:
        per_step = flops_per_forward(PREDICT2_2B, 1 + world_steps, latent_size)
        print(
            f"{world_steps:3d} {1 + world_steps:14d} {per_step / 1e12:19.2f} {per_step * PIPELINE_STEPS / 1e12:27.1f}"
        )
    print("(classifier-free guidance, world_guidance > 1, doubles every figure)")
    if paper:
        return

    low, high = layers
    timed = {depth: time_denoising_step(depth, latent_size, k, repeats) for depth in (low, high)}
    print(f"\nCPU, one denoising step through CosmosDynamics.rollout, k={k} ({1 + k} latent frames), fp32:")
    for depth, times in timed.items():
        for clock, values in times.items():
            print(
                f"  {depth} of 28 blocks, {clock:4s}: min {min(values):.2f} s, median "
                f"{statistics.median(values):.2f} s, max {max(values):.2f} s"
            )
    per_block = (min(timed[high]["cpu"]) - min(timed[low]["cpu"])) / (high - low)
    full = min(timed[low]["cpu"]) + (28 - low) * per_block
    two_blocks = flops_per_forward({**PREDICT2_2B, "num_layers": 2}, 1 + k, latent_size)
    achieved = (two_blocks - flops_per_forward({**PREDICT2_2B, "num_layers": 1}, 1 + k, latent_size)) / per_block
    print(
        f"  CPU time per block {per_block:.2f} s ({achieved / 1e9:.0f} GFLOP/s); extrapolated to 28 blocks: "
        f"{full:.1f} s per denoising step, {full * PIPELINE_STEPS / 60:.1f} min for the pipeline's "
        f"{PIPELINE_STEPS} steps (one thread, fp32)"
    )


if __name__ == "__main__":
    main()
