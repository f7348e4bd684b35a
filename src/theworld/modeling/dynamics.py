"""World dynamics: roll the latent scene forward, one frame per world step.

The interface is `WorldDynamics`: given the latents seen so far, predict the next frame's latents. `rollout`
feeds predictions back in, which is what `num_world_steps=k` runs. `ConvDynamics` is the default: a residual
conv net whose output layer starts at zero, so an untrained model copies the last frame (the persistence
baseline) and training only has to learn the change.
"""

import torch
from torch import nn

__all__ = ["SAMPLING_ARGUMENTS", "ConvDynamics", "WorldDynamics", "ZeroConv2d", "build_dynamics"]

# The per-call settings of a diffusion dynamics that `generate`, `ask` and `imagine` take, by the `rollout` keyword
# each becomes: denoising steps, classifier-free guidance scale, the seed of the noise, and a text prompt.
SAMPLING_ARGUMENTS = {
    "world_denoising_steps": "denoising_steps",
    "world_guidance": "guidance",
    "world_seed": "seed",
    "world_prompt": "prompt",
}


class ZeroConv2d(nn.Conv2d):
    """A conv layer that starts at zero, so the residual it feeds starts as the identity."""

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.zero_()
            self.bias.zero_()


class WorldDynamics(nn.Module):
    """Predicts z_{t+1} from the last `context_frames` latents (B, T, C, h, w)."""

    context_frames: int = 1

    def step(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def rollout(self, latents: torch.Tensor, num_steps: int, **sampling) -> torch.Tensor:
        """Imagine `num_steps` future frames: (B, T, C, h, w) -> (B, num_steps, C, h, w). `sampling` settings
        (denoising steps, guidance, seed) belong to a diffusion dynamics; this one is deterministic."""
        if any(value is not None for value in sampling.values()):
            names = ", ".join(f"world_{name}" for name, value in sampling.items() if value is not None)
            raise ValueError(
                f"{names} apply to a diffusion dynamics (dynamics_config type 'cosmos'); this model's dynamics is "
                f"{type(self).__name__}, which imagines deterministically: leave them out"
            )
        history, imagined = latents, []
        for _ in range(num_steps):
            next_latent = self.step(history[:, -self.context_frames :])
            imagined.append(next_latent)
            history = torch.cat([history, next_latent.unsqueeze(1)], dim=1)
        return torch.stack(imagined, dim=1) if imagined else latents[:, :0]


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.nn.functional.silu(self.conv1(torch.nn.functional.silu(self.norm(x)))))


class ConvDynamics(WorldDynamics):
    """A residual CNN over the stacked context latents, predicting the change from the last latent.

    With `downsample`, the residual blocks run at half resolution (a quarter of the compute, twice the reach)
    and the output layer sees the full-resolution context again, so small shifts stay precise.
    """

    def __init__(
        self,
        latent_channels: int,
        hidden_channels: int = 64,
        num_blocks: int = 3,
        context_frames: int = 1,
        downsample: bool = False,
    ):
        super().__init__()
        self.context_frames = context_frames
        context_channels = latent_channels * context_frames
        stride = 2 if downsample else 1
        self.inp = nn.Conv2d(context_channels, hidden_channels, 3, stride=stride, padding=1)
        self.blocks = nn.Sequential(*[_ResidualBlock(hidden_channels) for _ in range(num_blocks)])
        self.up = (
            nn.ConvTranspose2d(hidden_channels, hidden_channels, 4, stride=2, padding=1)
            if downsample
            else nn.Identity()
        )
        self.out = ZeroConv2d(hidden_channels + context_channels, latent_channels, 3, padding=1)

    def step(self, latents: torch.Tensor) -> torch.Tensor:
        steps = latents.shape[1]
        if steps < self.context_frames:  # too little history: repeat the first frame, as a still scene would
            pad = latents[:, :1].expand(-1, self.context_frames - steps, -1, -1, -1)
            latents = torch.cat([pad, latents], dim=1)
        stacked = latents.flatten(1, 2)
        features = torch.nn.functional.silu(self.up(self.blocks(self.inp(stacked))))
        return latents[:, -1] + self.out(torch.cat([features, stacked], dim=1))


def build_dynamics(latent_channels: int, dynamics_config: dict) -> WorldDynamics:
    """Build the dynamics model a config names: "conv" (the default) or "cosmos" (a Cosmos predictor's
    transformer and scheduler, `theworld.modeling.cosmos_dynamics`)."""
    settings = dict(dynamics_config)
    kind = settings.pop("type", "conv")
    if kind == "cosmos":
        from theworld.modeling.cosmos_dynamics import CosmosDynamics  # diffusers' pipelines load only for it

        return CosmosDynamics(latent_channels, **settings)
    if kind != "conv":
        raise ValueError(f"Unknown dynamics type {kind!r}; available: 'conv', 'cosmos'")
    return ConvDynamics(latent_channels, **settings)
