"""How well the world parts do on held-out clips: the VAE's reconstruction, the dynamics' rollout against
copying the last frame, and the object reader's states and facts against the simulator's."""

import math

import torch
from diffusers import AutoencoderKLWan

from theworld.evaluation.world_data import encode_clips
from theworld.modeling.dynamics import WorldDynamics
from theworld.modeling.object_reader import ObjectReader, object_fact_names, pair_fact_names
from theworld.modeling.world_encoder import WorldEncoder

__all__ = ["fact_accuracy", "reading_errors", "reconstruction_psnr", "rollout_errors"]


@torch.no_grad()
def reconstruction_psnr(vae: AutoencoderKLWan, frames: torch.Tensor, batch_size: int = 64) -> float:
    """PSNR (dB) of encode -> decode over `frames`, with pixel values scaled to [0, 1]."""
    squared_error, count = 0.0, 0
    for i in range(0, len(frames), batch_size):
        batch = frames[i : i + batch_size].unsqueeze(2)
        reconstruction = vae.decode(vae.encode(batch).latent_dist.mean).sample.clamp(-1, 1)
        squared_error += ((reconstruction - batch) / 2).pow(2).sum().item()
        count += batch.numel()
    return 10 * math.log10(1.0 / max(squared_error / count, 1e-12))


@torch.no_grad()
def rollout_errors(
    dynamics: WorldDynamics, world_encoder: WorldEncoder, clips: torch.Tensor, start: int = 2, rollout_steps: int = 4
) -> dict[str, list[float]]:
    """Per-step errors of the imagined future against the true future of `clips` (N, T, 3, H, W), next to the
    copy-the-last-frame baseline: in latent space (the dynamics alone) and in pixels (decoded, frames in [0, 1])."""
    latents = encode_clips(world_encoder, clips[:, : start + 1 + rollout_steps])
    context = latents[:, start + 1 - dynamics.context_frames : start + 1]
    imagined = dynamics.rollout(context, rollout_steps)
    true_latents = latents[:, start + 1 :]
    frames = clips[:, start + 1 : start + 1 + rollout_steps]

    def per_step(prediction: torch.Tensor, truth: torch.Tensor) -> list[float]:
        return (prediction - truth).pow(2).mean(dim=(0, 2, 3, 4)).tolist()

    return {
        "latent_model": per_step(imagined, true_latents),
        "latent_copy_last_frame": per_step(latents[:, start : start + 1].expand_as(true_latents), true_latents),
        "pixel_model": per_step(world_encoder.decode(imagined) / 2, frames / 2),
        "pixel_copy_last_frame": per_step(clips[:, start : start + 1].expand_as(frames) / 2, frames / 2),
    }


@torch.no_grad()
def reading_errors(
    reader: ObjectReader,
    dynamics: WorldDynamics,
    latents: torch.Tensor,
    targets: torch.Tensor,
    start: int = 2,
    rollout_steps: int = 4,
    size: int = 64,
) -> dict[str, list[float]]:
    """Mean position error in pixels of present objects, and presence accuracy, for the encoded frame `start`
    and each imagined frame after it (`world_data.reading_data` gives the latents and targets)."""
    context = latents[:, start + 1 - dynamics.context_frames : start + 1]
    frames = latents[:, start : start + 1]
    if rollout_steps:
        frames = torch.cat([frames, dynamics.rollout(context, rollout_steps)], dim=1)
    truth = targets[:, start : start + 1 + rollout_steps]
    states = reader.read(frames.flatten(0, 1)).unflatten(0, frames.shape[:2])
    shown = truth[..., 0] > 0
    distance = (states[..., 1:3] - truth[..., 1:3]).norm(dim=-1) * size
    position = [float(distance[:, k][shown[:, k]].mean()) for k in range(frames.shape[1])]
    presence = [float(((states[:, k, :, 0] > 0) == shown[:, k]).float().mean()) for k in range(frames.shape[1])]
    return {"position_error_px": position, "presence_accuracy": presence}


@torch.no_grad()
def fact_accuracy(reader: ObjectReader, data: tuple[torch.Tensor, ...]) -> dict[str, float]:
    """Accuracy of each fact (over every future step) on `world_data.fact_data`, where the mask keeps it."""
    courses, objects, object_mask, pairs, pair_mask = data
    object_hits = (reader.facts.objects(courses) > 0) == (objects > 0)
    pair_hits = (reader.facts.every_pair(courses) > 0) == (pairs > 0)
    accuracy: dict[str, list[torch.Tensor]] = {}
    steps = reader.max_steps
    for names, hits, mask in (
        (object_fact_names(steps), object_hits, object_mask),
        (pair_fact_names(steps), pair_hits, pair_mask),
    ):
        for column, name in enumerate(names):
            family = name.rsplit("_", 1)[0] if name[-1].isdigit() else name
            kept = mask[..., column] > 0
            accuracy.setdefault(family, []).append(hits[..., column][kept].float())
    return {family: float(torch.cat(parts).mean()) for family, parts in accuracy.items()}
