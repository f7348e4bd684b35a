"""`TheWorldParts`: Gemma 3 (`Gemma3ForConditionalGeneration`) with the parts TheWorld adds, and what each part
computes on its own.

The parts: the world encoder (a VAE: frames -> latents), the dynamics model (latents -> imagined future latents),
the world projector (latents -> world tokens, one per region per frame), the object reader (latents -> one token
per object, and what each mention of an object gets) and the audio encoder (log-mel features -> audio tokens).
This class builds them, grows a model by one (`add_object_reader`, `add_audio_encoder`), runs them on frames
(`imagine`, `project_world`), checks a call's inputs before any of them runs (`check_inputs`), and embeds a
prompt's tokens, images and audio as Gemma 3 does (`_embed_inputs`).
How a call puts them together (world blocks, `forward`, `generate`) is `TheWorld`'s, in `modeling_theworld.py`.
"""

import torch
from torch import nn
from transformers import AutoProcessor, Gemma3ForConditionalGeneration, Gemma3Model
from transformers.models.gemma3.modeling_gemma3 import Gemma3PreTrainedModel

from theworld.modeling.configuration_theworld import TheWorldConfig
from theworld.modeling.dynamics import ZeroConv2d, build_dynamics
from theworld.modeling.input_checks import check_pixel_values, check_prompt_length
from theworld.modeling.object_reader import ObjectReader
from theworld.modeling.world_encoder import WorldEncoder
from theworld.modeling.world_projector import WorldProjector
from theworld.omni.audio_encoder import AudioEncoder

__all__ = ["TheWorldParts"]


class TheWorldParts(Gemma3ForConditionalGeneration):
    """Gemma 3 with the world encoder, dynamics, projector, object reader and audio encoder (see the module)."""

    config_class = TheWorldConfig

    def __init__(self, config: TheWorldConfig):
        # Gemma3ForConditionalGeneration.__init__ calls post_init before we could add the world parts, so build
        # its two submodules here and initialise everything once.
        Gemma3PreTrainedModel.__init__(self, config)
        self.model = Gemma3Model(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        if config.enable_world:
            self._build_world_modules()
        if config.audio_config is not None:
            self.audio_encoder = AudioEncoder(
                config.audio_config, config.text_config.hidden_size, config.text_config.vocab_size
            )
        self._processor = None
        self.post_init()

    def _build_world_modules(self) -> None:
        config = self.config
        self.world_encoder = WorldEncoder(
            config.world_encoder_type, config.world_encoder_config, config.world_image_size
        )
        self.dynamics = build_dynamics(self.world_encoder.latent_channels, config.dynamics_config)
        self._build_world_projector()

    def _build_world_projector(self) -> None:
        config = self.config
        channels = self.world_encoder.latent_channels
        text_hidden = config.text_config.hidden_size
        self.world_projector = WorldProjector(
            channels,
            config.world_pool,
            config.world_projector_hidden_size or text_hidden,
            text_hidden,
            config.max_world_steps,
        )
        if config.world_objects is not None:
            self._build_object_reader()

    def _build_object_reader(self) -> None:
        config = self.config
        self.object_reader = ObjectReader(
            self.world_encoder.latent_channels,
            config.world_objects["token_ids"],
            config.world_objects["num_kinds"],
            config.world_objects["hidden_size"],
            config.text_config.hidden_size,
            config.max_world_steps,
            config.world_objects.get("kind_token_ids"),
            config.world_objects.get("asked_facts", False),
        )

    def add_object_reader(self, world_objects: dict) -> None:
        """Give the world an object reader (`config.world_objects`, with token ids): its tokens join the world
        tokens, and its reading of each object joins every mention of the object's name. A reader already there
        keeps its weights (adding kinds to one gives it fresh fact heads)."""
        previous = self.object_reader.state_dict() if self.config.world_objects is not None else {}
        self.config.world_objects = dict(world_objects)
        self.config.validate_architecture()
        reference = self.lm_head.weight
        self._build_object_reader()
        self.object_reader.apply(self._init_weights)
        self.object_reader.load_state_dict(previous, strict=False)
        self.object_reader.to(device=reference.device, dtype=reference.dtype)

    def add_audio_encoder(self, audio_config: dict, audio_token_id: int) -> None:
        """Give the model ears: a fresh audio encoder, and room in the embeddings for the audio tokens."""
        if audio_token_id >= self.config.text_config.vocab_size:
            self.resize_token_embeddings(audio_token_id + 1, mean_resizing=False)
        self.config.audio_config, self.config.audio_token_id = dict(audio_config), audio_token_id
        reference = self.lm_head.weight
        self.audio_encoder = AudioEncoder(
            audio_config, self.config.text_config.hidden_size, self.config.text_config.vocab_size
        )
        self.audio_encoder.to(device=reference.device, dtype=reference.dtype)

    def _init_weights(self, module: nn.Module) -> None:
        # transformers only calls this for modules it did not load, so only a fresh dynamics starts at zero.
        if isinstance(module, ZeroConv2d):
            module.reset_parameters()
        else:
            super()._init_weights(module)

    # ----------------------------------------------------------------------------------------------- world
    @property
    def tokens_per_world_step(self) -> int:
        regions = self.world_projector.tokens_per_frame(self.world_encoder.latent_size)
        return regions + (self.object_reader.tokens_per_frame() if self.config.world_objects is not None else 0)

    def check_world_steps(self, num_world_steps: int) -> None:
        """Raise a ValueError, naming the fix, when this model cannot imagine `num_world_steps` frames."""
        if num_world_steps < 0:
            raise ValueError(f"num_world_steps must be 0 or more, got {num_world_steps}")
        if num_world_steps > 0 and not self.config.enable_world:
            raise ValueError(
                f"num_world_steps={num_world_steps} needs the world model, but this model was loaded with "
                "enable_world=False; load it with enable_world=True"
            )
        if num_world_steps > self.config.max_world_steps:
            raise ValueError(
                f"num_world_steps={num_world_steps} exceeds this model's max_world_steps="
                f"{self.config.max_world_steps}; ask for at most {self.config.max_world_steps}"
            )

    def _world_steps(self, num_world_steps: int | None, skip_world_tokens: bool, has_image: bool) -> int | None:
        """The number of imagined frames for this call, or None when the call is plain Gemma 3."""
        if num_world_steps is not None:
            self.check_world_steps(num_world_steps)
            if num_world_steps > 0 and not has_image and not skip_world_tokens:
                raise ValueError(
                    f"num_world_steps={num_world_steps} imagines the future of an image, but the prompt has none; "
                    "add an image to the conversation or use num_world_steps=0"
                )
        if skip_world_tokens or not self.config.enable_world or not has_image:
            return None
        return self.config.num_world_steps if num_world_steps is None else num_world_steps

    def check_inputs(
        self,
        input_ids: torch.LongTensor | None,
        pixel_values: torch.Tensor | None = None,
        num_world_steps: int | None = None,
        skip_world_tokens: bool = False,
        max_new_tokens: int | None = None,
    ) -> None:
        """Raise a ValueError, before any compute, for a call `forward` or `generate` cannot answer well: world
        steps this model cannot imagine, image tokens without `pixel_values`, `pixel_values` that are not finite or
        not in [-1, 1] (see `input_checks`), or a prompt that, with its world blocks and `max_new_tokens` (default:
        the generation config's), does not fit the context."""
        steps = self._world_steps(num_world_steps, skip_world_tokens, pixel_values is not None)
        check_pixel_values(input_ids, pixel_values, self.config.image_token_id)
        if input_ids is None:
            return
        block = 0 if steps is None else (1 + steps) * self.tokens_per_world_step + 2
        if max_new_tokens is None:
            max_new_tokens = self.generation_config.max_new_tokens or 0
        context = self.config.text_config.max_position_embeddings
        check_prompt_length(input_ids, self.config.boi_token_id, block, max_new_tokens, context)

    def place(self, device: str | torch.device, offload_world_model: bool = False):
        """Move the model to `device`. With `offload_world_model`, a Cosmos predictor's transformer (the largest
        world part: 2B parameters for Predict2) stays on the CPU and visits `device` only while it denoises
        (`CosmosDynamics.enable_offload`, the hook of `theworld world --offload-model`); it never sits on the
        device beside the language model."""
        if not offload_world_model:
            return self.to(device)
        if not hasattr(getattr(self, "dynamics", None), "enable_offload"):
            raise ValueError(
                "offload_world_model keeps a Cosmos predictor (dynamics_type='cosmos') off the device between "
                "imaginings; this model's dynamics is not one: leave it out"
            )
        for name, child in self.named_children():
            if name != "dynamics":
                child.to(device)
        self.dynamics.transformer.to("cpu")
        for name, buffer in self.dynamics.named_buffers(recurse=False):
            setattr(self.dynamics, name, buffer.to(device))
        self.dynamics.enable_offload(device)
        return self

    def imagine(self, frames: torch.Tensor, num_world_steps: int, **sampling) -> torch.Tensor:
        """Latents of the current frame and its imagined future: images (N, 3, H, W) or clips (N, T, 3, H, W) in
        [-1, 1] -> (N, 1 + k, C, h, w). A clip's last frame is the current one; its earlier frames are the
        dynamics' context (a Cosmos predictor's: the last 5, encoded as one video, when the clip has them).
        `sampling` (`denoising_steps`, `guidance`, `seed`) reaches a diffusion dynamics."""
        clips = (frames if frames.dim() == 5 else frames.unsqueeze(1)).to(self.device, self.dtype)
        video_frames = getattr(self.dynamics, "conditioning_video_frames", 1)
        if video_frames > 1 and clips.shape[1] >= video_frames and num_world_steps > 0:
            # A Cosmos predictor on the Wan VAE reads a clip as the pipelines do: its last frames encoded as one
            # video. The current frame is also encoded on its own, as every frame's world tokens are.
            latents = self.world_encoder.encode(clips[:, -1:])
            sampling["conditioning"] = self.world_encoder.encode_video(clips[:, -video_frames:])
        else:
            latents = self.world_encoder.encode(clips)
        return torch.cat([latents[:, -1:], self.dynamics.rollout(latents, num_world_steps, **sampling)], dim=1)

    def draw_world(self, latents: torch.Tensor) -> torch.Tensor:
        """The frames of `imagine`'s latents (N, 1 + k, C, h, w), as (N, F, 3, H, W) in [-1, 1]: one per latent
        frame, or, when the dynamics' latent frames pack several frames (a Cosmos predictor on the Wan VAE), the
        whole video the VAE decodes from them (1 + 4k frames)."""
        if getattr(self.dynamics, "frames_per_step", 1) > 1:
            return self.world_encoder.decode_video(latents)
        return self.world_encoder.decode(latents)

    def encode_world(self, pixel_values: torch.Tensor, num_world_steps: int) -> torch.Tensor:
        """World token embeddings for each image: (N, (1 + k) * tokens_per_world_step, hidden)."""
        return self.project_world(self.imagine(pixel_values, num_world_steps))[0]

    def project_world(
        self, latents: torch.Tensor, object_states: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """World tokens (N, (1 + k) * tokens_per_world_step, hidden) of latents (N, 1 + k, C, h, w), and with an
        object reader, each object's course (N, objects, course) for the prompt's mentions of it.
        `object_states` (N, 1 + k, objects, state) may carry the object reader's reading of the latents."""
        regions = self.world_projector(latents)
        if self.config.world_objects is None:
            return regions, None
        objects, courses = self.object_reader(latents, self.get_input_embeddings(), object_states)
        steps = latents.shape[1]
        # Frame by frame: the frame's regions, then its objects.
        tokens = torch.cat([regions.unflatten(1, (steps, -1)), objects.unflatten(1, (steps, -1))], dim=2)
        return tokens.flatten(1, 2), courses

    def question_words(self, ids: torch.LongTensor) -> torch.Tensor | None:
        """(B, L) ids as heard -> (B, L, D) their word embeddings, zeros at tokens that are not words (image,
        world, filler): what an object reader with `asked_facts` picks a question's facts from; else None."""
        if self.config.world_objects is None or not self.object_reader.asked_facts:
            return None
        config = self.config
        not_words = [config.boi_token_id, config.eoi_token_id, config.image_token_id, *config.world_token_ids]
        is_word = ~torch.isin(ids, torch.tensor(not_words, device=ids.device))
        if self.get_input_embeddings().padding_idx is not None:
            is_word &= ids != self.get_input_embeddings().padding_idx
        return self.get_input_embeddings()(ids.masked_fill(~is_word, 0)) * is_word.unsqueeze(-1)

    def _embed_inputs(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.LongTensor, torch.Tensor | None]:
        """The embeddings Gemma3Model.forward builds (scaled token embeddings with image features scattered in),
        with the audio encoder's tokens scattered into the `<audio_soft_token>` positions; the ids as heard:
        `input_ids` with each audio token replaced by the word the audio encoder hears there; and where the audio
        encoder's CTC compression left fillers that attention must not see (`hide_ctc_fillers`), else None."""
        if input_features is not None and self.config.audio_config is None:
            raise ValueError("This model has no audio encoder, so it cannot hear; use a model trained with speech")
        image_token_id = self.config.image_token_id
        embed_ids = input_ids
        if image_token_id >= self.model.vocab_size:  # out-of-vocabulary placeholder, as Gemma3Model handles it
            embed_ids = input_ids.masked_fill(input_ids == image_token_id, 0)
        embeds = self.get_input_embeddings()(embed_ids)
        if pixel_values is not None:
            features = self.model.get_image_features(pixel_values.to(self.dtype), return_dict=True).pooler_output
            embeds = _scatter(embeds, input_ids == image_token_id, features, "image")
        if input_features is not None:
            if input_features_mask is None:
                input_features_mask = torch.ones(input_features.shape[:2], dtype=torch.bool, device=embeds.device)
            features, heard = self.audio_encoder(
                input_features.to(self.dtype), input_features_mask, self.get_input_embeddings(), return_labels=True
            )
            is_audio = input_ids == self.config.audio_token_id
            embeds = _scatter(embeds, is_audio, features, "audio")
            input_ids = input_ids.masked_scatter(is_audio, heard.to(input_ids.dtype))
            if self.audio_encoder.hide_fillers:
                # The frames a word's merge freed: hidden (attention mask 0), they take no position either, so a
                # spoken question reads exactly like its typed twin, word for word and position for position.
                return embeds, input_ids, is_audio & (input_ids == self.get_input_embeddings().padding_idx)
        return embeds, input_ids, None

    @property
    def processor(self):
        """The processor saved with this checkpoint, loaded on first use."""
        if self._processor is None:
            self._processor = AutoProcessor.from_pretrained(self.name_or_path)
        return self._processor

    @processor.setter
    def processor(self, processor) -> None:
        self._processor = processor


def _scatter(embeds: torch.Tensor, mask: torch.Tensor, features: torch.Tensor, kind: str) -> torch.Tensor:
    count = features.numel() // embeds.shape[-1]
    if int(mask.sum()) != count:
        raise ValueError(
            f"The prompt has {int(mask.sum())} {kind} tokens but the {kind} inputs give {count} features; "
            "build the inputs with this model's processor"
        )
    return embeds.masked_scatter(mask.unsqueeze(-1), features.to(embeds.dtype))
