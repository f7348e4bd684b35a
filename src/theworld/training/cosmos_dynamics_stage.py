"""A tiny Cosmos-style predictor as TheWorld's dynamics, trained on ToyWorld's VAE latents: a stage of
`theworld train` that replaces the checkpoint's dynamics with a small diffusers `CosmosTransformer3DModel` run by
the Cosmos-Predict2.5 pipeline's loop (`theworld.modeling.cosmos_dynamics`).

    OMP_NUM_THREADS=1 theworld train cosmos-dynamics --output-dir DIR   # DIR: a trained TheWorld (a copy)

It trains with the objective the Predict2.5 sampler assumes (rectified flow: the transformer predicts the
velocity noise - x0 at x_t = (1 - sigma) x0 + sigma noise, the conditional frame clean at its small fixed
timestep and masked by the condition mask), on the latents of whole ToyWorld clips: one world step is one frame,
since TheWorld encodes each frame on its own. It is not part of `train all`: the shipped model keeps the
convolutional dynamics unless this one measures better (docs/cosmos-dynamics.md).
"""

from dataclasses import dataclass

import torch

from theworld.evaluation.world_data import encode_clips, simulate_clips
from theworld.evaluation.world_parts import rollout_errors
from theworld.media import to_model_range
from theworld.modeling.cosmos_dynamics import CosmosDynamics
from theworld.modeling.dynamics import build_dynamics
from theworld.training.loop import optimize
from theworld.training.stage import StageContext

__all__ = ["COSMOS_DYNAMICS_SETTINGS", "CosmosDynamicsSettings", "cosmos_dynamics", "tiny_cosmos_dynamics_config"]

# The Predict2.5 pipeline's timestep for the conditional (clean) frame.
CONDITIONAL_TIMESTEP = 0.0001


@dataclass(frozen=True)
class CosmosDynamicsSettings:
    clips: int = 400
    steps: int = 1500
    batch_size: int = 16
    lr: float = 1e-3
    hidden: int = 192  # attention heads x head size
    heads: int = 6
    layers: int = 4
    denoising_steps: int = 10  # the trained dynamics' default per call
    eval_clips: int = 64
    seed: int = 0


COSMOS_DYNAMICS_SETTINGS = {
    "full": CosmosDynamicsSettings(),
    "smoke": CosmosDynamicsSettings(clips=4, steps=2, batch_size=2, hidden=32, heads=2, layers=1, eval_clips=2),
}


def tiny_cosmos_dynamics_config(
    latent_channels: int, latent_size: int, max_world_steps: int, settings: CosmosDynamicsSettings
) -> dict:
    """The `dynamics_config` of a small Cosmos-Predict2.5-style predictor for latents of C x size x size: the
    transformer and scheduler configs as diffusers writes them, with an empty prompt of one token."""
    transformer = dict(
        in_channels=latent_channels + 1,  # + the condition mask
        out_channels=latent_channels,
        num_attention_heads=settings.heads,
        attention_head_dim=settings.hidden // settings.heads,
        num_layers=settings.layers,
        mlp_ratio=4.0,
        text_embed_dim=8,  # the prompt is empty: its one zero token costs nothing
        adaln_lora_dim=32,
        max_size=(max_world_steps + 1, latent_size, latent_size),
        patch_size=(1, 2, 2),
        rope_scale=(1.0, 1.0, 1.0),
        concat_padding_mask=False,  # the padding-mask resize needs torchvision; ToyWorld frames are never padded
    )
    scheduler = dict(
        _class_name="UniPCMultistepScheduler",
        use_flow_sigmas=True,
        prediction_type="flow_prediction",
        flow_shift=1.0,
    )
    return {
        "type": "cosmos",
        "pipeline": "Cosmos2_5_PredictBasePipeline",
        "transformer": transformer,
        "scheduler": scheduler,
        "denoising_steps": settings.denoising_steps,
        "prompt_length": 1,
        "frames_per_step": 1,  # trained on per-frame latents: one world step is one frame
    }


def train_cosmos_dynamics(
    dynamics: CosmosDynamics,
    latents: torch.Tensor,
    steps: int,
    rollout_steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
) -> float:
    """Fit the predictor on clip latents (N, T, C, h, w): from a random frame, the next `rollout_steps` frames are
    noised to a random sigma and the transformer learns their velocity; returns the last mean squared error."""
    generator = torch.Generator().manual_seed(seed)
    transformer = dynamics.transformer
    num_clips, num_frames = latents.shape[:2]
    window = torch.arange(rollout_steps + 1)
    mask = torch.zeros(1, 1, rollout_steps + 1, 1, 1)
    mask[:, :, 0] = 1.0  # frame 0 is the condition

    def step_loss() -> tuple[torch.Tensor, float]:
        clips = torch.randint(num_clips, (batch_size,), generator=generator)
        start = torch.randint(0, num_frames - rollout_steps, (batch_size,), generator=generator)
        clean = latents[clips[:, None], start[:, None] + window].transpose(1, 2)  # (B, C, 1 + k, h, w)
        noise = torch.randn(clean.shape, generator=generator)
        sigma = torch.rand(batch_size, 1, 1, 1, 1, generator=generator)
        noisy = mask * clean + (1 - mask) * ((1 - sigma) * clean + sigma * noise)
        timestep = mask * CONDITIONAL_TIMESTEP + (1 - mask) * sigma
        condition = mask.expand(batch_size, 1, -1, *clean.shape[-2:])
        velocity = transformer(
            hidden_states=noisy,
            condition_mask=condition,
            timestep=timestep,
            encoder_hidden_states=dynamics.prompt_embeds.expand(batch_size, -1, -1),
            padding_mask=clean.new_zeros(1, 1, *clean.shape[-2:]),
            return_dict=False,
        )[0]
        loss = ((velocity - (noise - clean)) ** 2 * (1 - mask)).sum() / ((1 - mask).sum() * clean[:, :, :1].numel())
        return loss, loss.item()

    transformer.train()
    error = optimize(transformer.parameters(), steps, lr, step_loss, "cosmos dynamics", weight_decay=0.01)
    transformer.eval()
    return error


def cosmos_dynamics(context: StageContext) -> dict:
    """Give the checkpoint a tiny Cosmos predictor as its dynamics (or train the one it has further), on the
    latents of ToyWorld clips, and measure its rollout on held-out clips against copying the last frame."""
    model, settings = context.model, context.settings
    encoder, steps = model.world_encoder, model.config.max_world_steps
    if not isinstance(model.dynamics, CosmosDynamics):
        config = tiny_cosmos_dynamics_config(encoder.latent_channels, encoder.latent_size, steps, settings)
        model.dynamics = build_dynamics(encoder.latent_channels, config)
        model.config.dynamics_config = config
    latents = encode_clips(encoder, to_model_range(simulate_clips("train", settings.clips)))
    rollout = model.config.num_world_steps or steps
    mse = train_cosmos_dynamics(
        model.dynamics, latents, settings.steps, rollout, settings.batch_size, settings.lr, settings.seed
    )
    held_out = to_model_range(simulate_clips("val", settings.eval_clips))
    errors = rollout_errors(model.dynamics, encoder, held_out, rollout_steps=rollout)
    parameters = sum(p.numel() for p in model.dynamics.transformer.parameters())
    return {"cosmos_dynamics_train_mse": mse, "cosmos_dynamics_parameters": parameters, **errors}
