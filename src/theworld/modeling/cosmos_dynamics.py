"""The Cosmos predictor as TheWorld's dynamics: a diffusers `CosmosTransformer3DModel` and its scheduler denoise
the k future latent frames of the current frame (`num_world_steps=k`), in the world encoder's own latent space.

The denoising is diffusers' own: `rollout` calls the pipeline the transformer came from
(`Cosmos2VideoToWorldPipeline` for Cosmos-Predict2, `Cosmos2_5_PredictBasePipeline` for Predict2.5) with
`output_type="latent"`, so its conditioning (the condition mask, the conditional frames' sigma), timesteps,
scheduler steps and classifier-free guidance are the pipeline's. The one thing replaced is the pipeline's VAE:
TheWorld has already encoded the current frame, so a stand-in (`_EncodedFrame`) hands the pipeline those latents
instead of encoding the frame a second time. The pipeline reads nothing else from it but shapes.

Latent frames: latent frame 0 is the current frame, and each world step is one more latent frame. With the Wan
VAE of Cosmos-Predict2/2.5, a latent frame after the first packs 4 video frames, so k world steps are 4k video
frames after the current one (a video of 4k + 1 frames). A predictor trained on per-frame latents (the ToyWorld
one) makes one world step one frame.

The prompt: the text embeddings are computed once, when the dynamics is built from a diffusers folder (by that
folder's own text encoder and the pipeline's `encode_prompt`: the empty prompt, and the pipeline's default
negative prompt for guidance), and saved with the weights, so no text encoder is loaded at run time. Without a
text encoder they are zeros, which is what the pipelines feed for padding. A call may set a prompt of its own
(`world_prompt`, e.g. the user's question) once `load_text_encoder` has kept the folder's text encoder.
"""

from types import SimpleNamespace
from typing import Any

import diffusers
import torch
from diffusers import CosmosTransformer3DModel

from theworld.modeling.dynamics import WorldDynamics

__all__ = ["PIPELINES", "CosmosDynamics", "cosmos_dynamics_config"]

# The pipelines whose denoising loop a Cosmos dynamics runs: name -> default maximum prompt length.
PIPELINES = {"Cosmos2VideoToWorldPipeline": 512, "Cosmos2_5_PredictBasePipeline": 512}


class _Posterior:
    """What the pipeline's `retrieve_latents` reads from an encoding: the given latents, as mode or sample."""

    def __init__(self, latents: torch.Tensor):
        self.latents = latents

    def mode(self) -> torch.Tensor:
        return self.latents

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        # Predict2 draws a posterior sample here before its noise; drawing (and dropping) the same numbers keeps a
        # seed's noise the pipeline's own. TheWorld's latents are the posterior mean, as its world encoder gives.
        diffusers.utils.torch_utils.randn_tensor(
            self.latents.shape, generator=generator, device=self.latents.device, dtype=self.latents.dtype
        )
        return self.latents


class _EncodedFrame(torch.nn.Module):
    """The pipeline's VAE, standing in for the world encoder: `encode` returns the conditional latent frames TheWorld
    already encoded (normalised, so the statistics it reports are 0 and 1): the current frame's, or a clip's. It
    holds no weights; the pipeline reads its temporal and spatial factors only to size the latent video, which
    `rollout` sets to c + k frames of h x w."""

    temperal_downsample = [False, True, True]  # factors 4 and 8: rollout sizes its video by them

    def __init__(self, channels: int):
        super().__init__()
        self.config = SimpleNamespace(z_dim=channels, latents_mean=[0.0] * channels, latents_std=[1.0] * channels)
        self.current: torch.Tensor | None = None

    @property
    def dtype(self) -> torch.dtype:
        return self.current.dtype if self.current is not None else torch.float32

    @property
    def device(self) -> torch.device:
        return self.current.device if self.current is not None else torch.device("cpu")

    def encode(self, video: torch.Tensor) -> SimpleNamespace:
        """The conditional latent frames `current` (1, C, c, h, w), then the last of them again for the frames the
        pipeline padded the video with (it reads those only where its condition mask is 0, i.e. never)."""
        latent_frames = (video.shape[2] - 1) // 4 + 1
        padding = self.current[:, :, -1:].expand(-1, -1, latent_frames - self.current.shape[2], -1, -1)
        latents = torch.cat([self.current, padding], dim=2).float()
        return SimpleNamespace(latent_dist=_Posterior(latents.contiguous()))


class _NoFrames:
    """The pipelines insist on a safety checker. No frames reach this one (the output is latents), and text only
    when a call sets `world_prompt`: a question the user already asked TheWorld, which it lets through."""

    def to(self, *args, **kwargs) -> "_NoFrames":
        return self

    def check_text_safety(self, prompt: str) -> bool:
        return True

    def check_video_safety(self, frames):
        return frames


class CosmosDynamics(WorldDynamics):
    """A Cosmos predictor's transformer and scheduler as the world dynamics (see the module).

    `transformer` and `scheduler` are the diffusers configs (what the folders' `config.json` and
    `scheduler_config.json` hold, with `_class_name`); `pipeline` names the pipeline whose loop runs them;
    `denoising_steps`, `guidance` and `seed` are the defaults of each call; `fps` is Predict2's frame-rate input;
    `frames_per_step` is how many video frames a latent frame after the first holds (4 with the Wan VAE the Cosmos
    predictors were trained on; 1 for a predictor trained on per-frame latents), which `draw_world` decodes by.
    """

    def __init__(
        self,
        latent_channels: int,
        transformer: dict[str, Any],
        scheduler: dict[str, Any],
        pipeline: str = "Cosmos2VideoToWorldPipeline",
        denoising_steps: int = 35,
        guidance: float = 1.0,
        seed: int = 0,
        fps: int = 16,
        prompt_length: int | None = None,
        frames_per_step: int = 4,
    ):
        super().__init__()
        if pipeline not in PIPELINES:
            raise ValueError(f"Unknown Cosmos pipeline {pipeline!r}; available: {', '.join(PIPELINES)}")
        self.transformer = CosmosTransformer3DModel.from_config(transformer)
        if self.transformer.config.out_channels != latent_channels:
            raise ValueError(
                f"The Cosmos transformer predicts {self.transformer.config.out_channels} latent channels but the "
                f"world encoder makes {latent_channels}; use the transformer of the VAE's own Cosmos model"
            )
        self.scheduler_config = dict(scheduler)
        self.pipeline_name = pipeline
        self.defaults = {"denoising_steps": denoising_steps, "guidance": guidance, "seed": seed}
        self.fps = fps
        self.frames_per_step = frames_per_step
        config = self.transformer.config
        text_dim = config.crossattn_proj_in_channels if config.use_crossattn_projection else config.text_embed_dim
        length = prompt_length or PIPELINES[pipeline]
        # Saved with the weights: the empty prompt's embeddings and the negative prompt's (see the module).
        self.register_buffer("prompt_embeds", torch.zeros(1, length, text_dim), persistent=True)
        self.register_buffer("negative_prompt_embeds", torch.zeros(1, length, text_dim), persistent=True)
        self._stand_in = _EncodedFrame(latent_channels)
        self.__dict__["_pipeline"] = None  # built on first use; not a submodule, so it is neither saved nor moved
        self.__dict__["_offload_hook"] = None

    def pipeline(self):
        """The diffusers pipeline whose loop `rollout` runs, around this transformer and a fresh scheduler."""
        if self._pipeline is None:
            scheduler_class = getattr(diffusers, self.scheduler_config["_class_name"])
            scheduler = scheduler_class.from_config(self.scheduler_config)
            pipe = getattr(diffusers, self.pipeline_name)(
                text_encoder=None,
                tokenizer=None,
                transformer=self.transformer,
                vae=self._stand_in,
                scheduler=scheduler,
                safety_checker=_NoFrames(),
            )
            pipe.set_progress_bar_config(disable=True)
            self.__dict__["_pipeline"] = pipe
        return self._pipeline

    def load_text_encoder(self, folder: str, dtype: torch.dtype | None = None, **hub_kwargs: Any) -> None:
        """Keep the text encoder and tokenizer of a Cosmos diffusers folder (T5 for Predict2, Qwen2.5-VL for 2.5)
        beside the transformer, so that a call may set a prompt (`world_prompt`, e.g. the user's question). They
        are not part of the dynamics' weights and are not saved with the model."""
        text = _text_parts(diffusers.DiffusionPipeline.load_config(folder, **hub_kwargs), folder, dtype, hub_kwargs)
        text["text_encoder"].to(self.transformer.device).eval()
        pipe = self.pipeline()
        pipe.register_modules(**text)

    def enable_offload(self, device: str | torch.device) -> None:
        """Keep the transformer on the CPU between imaginings and move it to `device` only while it denoises: the
        accelerate hook that `theworld world --offload-model` puts on the pipelines' transformer."""
        from accelerate import cpu_offload_with_hook

        _, hook = cpu_offload_with_hook(self.transformer, torch.device(device))
        self.__dict__["_offload_hook"] = hook

    @property
    def conditioning_video_frames(self) -> int:
        """How many of a clip's last frames the predictor is conditioned on, encoded as one video: 1 + one latent
        frame's worth (5 with the Wan VAE: the pipelines' two conditional latent frames); 1 for a predictor of
        per-frame latents, whose world steps are single frames."""
        return 1 + self.frames_per_step if self.frames_per_step > 1 else 1

    def step(self, latents: torch.Tensor) -> torch.Tensor:
        return self.rollout(latents, 1)[:, 0]

    def rollout(
        self,
        latents: torch.Tensor,
        num_steps: int,
        denoising_steps: int | None = None,
        guidance: float | None = None,
        seed: int | None = None,
        prompt: str | None = None,
        conditioning: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Denoise `num_steps` future latent frames after the last of `latents` (B, T, C, h, w), all at once, as
        the pipeline does: (B, T, C, h, w) -> (B, num_steps, C, h, w). Images are denoised one after another
        from one generator seeded with `seed`, so the first gets exactly the pipeline's result for that seed.
        `prompt` replaces the empty prompt: the pipeline encodes it with the text encoder `load_text_encoder`
        kept (and the default negative prompt, for guidance). `conditioning` (B, 2, C, h, w), a clip's last
        `conditioning_video_frames` encoded as one video, conditions on the clip instead of its last frame: the
        pipelines' two conditional latent frames, as when they are given that video."""
        settings = {"denoising_steps": denoising_steps, "guidance": guidance, "seed": seed}
        settings = {key: self.defaults[key] if value is None else value for key, value in settings.items()}
        if int(settings["denoising_steps"]) < 1:
            raise ValueError(f"world_denoising_steps must be 1 or more, got {settings['denoising_steps']}")
        if prompt is not None and self.pipeline().text_encoder is None:
            raise ValueError(
                "world_prompt needs the Cosmos text encoder: call model.dynamics.load_text_encoder(folder) with the "
                "Cosmos diffusers folder first, or leave world_prompt out (the empty prompt)"
            )
        if num_steps == 0:
            return latents[:, :0]
        batch, _, channels, height, width = latents.shape
        if conditioning is None:
            conditioning = latents[:, -1:]
        if conditioning.shape[1] not in (1, 2) or conditioning.shape[0] != batch:
            raise ValueError(
                f"The Cosmos pipelines condition on 1 or 2 latent frames per image, got {tuple(conditioning.shape)}"
            )
        conditional = conditioning.shape[1]
        if height % 2 or width % 2:
            raise ValueError(f"The Cosmos dynamics needs an even latent size, got {height}x{width}")
        pipe, factor = self.pipeline(), 2 ** len(self._stand_in.temperal_downsample)
        generator = torch.Generator(latents.device).manual_seed(int(settings["seed"]))
        arguments = dict(
            height=height * factor,
            width=width * factor,
            num_frames=4 * (conditional - 1 + num_steps) + 1,
            num_inference_steps=int(settings["denoising_steps"]),
            guidance_scale=float(settings["guidance"]),
            generator=generator,
            output_type="latent",
        )
        if self.pipeline_name == "Cosmos2VideoToWorldPipeline":
            arguments["fps"] = self.fps
        else:
            arguments["num_latent_conditional_frames"] = conditional
        # The pipeline reads the video's length and size only: the stand-in VAE gives it each row's latents.
        video_frames = 4 * (conditional - 1) + 1
        video = latents.new_zeros(1, 3, video_frames, height * factor, width * factor, dtype=torch.float32)
        if self.pipeline_name == "Cosmos2VideoToWorldPipeline":
            video = video.transpose(1, 2)  # it takes (batch, frames, channels, H, W) and preprocesses it
        if prompt is None:
            text = dict(
                prompt_embeds=self.prompt_embeds.to(self.transformer.dtype),
                negative_prompt_embeds=self.negative_prompt_embeds.to(self.transformer.dtype),
            )
        else:
            text = dict(prompt=prompt)
        futures = []
        for row in range(batch):
            self._stand_in.current = conditioning[row : row + 1].transpose(1, 2)
            output = pipe(video=video, **text, **arguments).frames
            futures.append(output[:, :, conditional : conditional + num_steps].transpose(1, 2))
        self._stand_in.current = None
        if self._offload_hook is not None:
            self._offload_hook.offload()
        return torch.cat(futures).to(latents.dtype).reshape(batch, num_steps, channels, height, width)


def cosmos_dynamics_config(
    folder: str, text_embeddings: bool = True, dtype: torch.dtype | None = None, **hub_kwargs: Any
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The `dynamics_config` of a Cosmos-Predict2/2.5 diffusers folder (or Hub id), and the weights to load into
    a `CosmosDynamics` built from it: its transformer's, and the prompt embeddings its text encoder gives the empty
    and the default negative prompts (zeros with `text_embeddings=False` or no text encoder there)."""
    index = diffusers.DiffusionPipeline.load_config(folder, **hub_kwargs)
    name = index.get("_class_name")
    if name not in PIPELINES:
        raise ValueError(f"{folder} is a {name} pipeline; the Cosmos dynamics takes {', '.join(PIPELINES)}")
    transformer = CosmosTransformer3DModel.from_pretrained(folder, subfolder="transformer", dtype=dtype, **hub_kwargs)
    scheduler_class = getattr(diffusers, index["scheduler"][1])
    scheduler = dict(scheduler_class.load_config(folder, subfolder="scheduler", **hub_kwargs))
    vae = diffusers.AutoencoderKLWan.load_config(folder, subfolder="vae", **hub_kwargs)
    config = {
        "type": "cosmos",
        "pipeline": name,
        "frames_per_step": 2 ** sum(vae["temperal_downsample"]),
        "transformer": {key: value for key, value in transformer.config.items() if not key.startswith("_")},
        "scheduler": {key: value for key, value in scheduler.items() if key != "_diffusers_version"},
    }
    weights = {f"transformer.{key}": value for key, value in transformer.state_dict().items()}
    if text_embeddings and index.get("text_encoder", [None, None])[1] is not None:
        text = _text_parts(index, folder, dtype, hub_kwargs)
        pipe = getattr(diffusers, name)(
            **text,
            transformer=transformer,
            vae=_EncodedFrame(transformer.config.out_channels),
            scheduler=scheduler_class.from_config(scheduler),
            safety_checker=_NoFrames(),
        )
        positive, negative = pipe.encode_prompt(prompt="", do_classifier_free_guidance=True, device="cpu")
        weights["prompt_embeds"], weights["negative_prompt_embeds"] = positive, negative
        config["prompt_length"] = positive.shape[1]
    return config, weights


def _text_parts(index: dict, folder: str, dtype: torch.dtype | None, hub_kwargs: dict) -> dict[str, Any]:
    """The tokenizer and text encoder of a Cosmos diffusers folder, as its `model_index.json` names them."""
    import transformers

    return {
        "tokenizer": getattr(transformers, index["tokenizer"][1]).from_pretrained(
            folder, subfolder="tokenizer", **hub_kwargs
        ),
        "text_encoder": getattr(transformers, index["text_encoder"][1]).from_pretrained(
            folder, subfolder="text_encoder", dtype=dtype, **hub_kwargs
        ),
    }
