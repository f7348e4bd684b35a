"""`TheWorld`: Gemma 3 (`Gemma3ForConditionalGeneration`) with world tokens.

For every image in the prompt, the world encoder turns the image into latents z_0, the dynamics model imagines
z_1 ... z_k (`num_world_steps=k`), and the projector turns them into world tokens, inserted just before the
image as `<start_of_world> w ... w <end_of_world>`. The world tokens attend to each other bidirectionally,
like image tokens. At generation they are computed once, in the prefill, and the decode steps read them from
the KV cache: `generate` hands the merged prompt to transformers' `generate` as `inputs_embeds`, and returns
the user's own prompt ids followed by the new tokens, exactly the shape plain Gemma 3 returns.

With the world off (`enable_world=False`, `skip_world_tokens=True`, or a prompt with no image) every call goes
straight to `Gemma3ForConditionalGeneration`.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from torch import nn
from transformers import (
    AutoConfig,
    AutoProcessor,
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3Model,
)
from transformers.modeling_outputs import ModelOutput
from transformers.models.gemma3.modeling_gemma3 import Gemma3PreTrainedModel

from theworld.media import load_image
from theworld.modeling.configuration_theworld import TheWorldConfig
from theworld.modeling.dynamics import ZeroConv2d, build_dynamics
from theworld.modeling.gguf import GGUF_MODELS, convert_gguf_to_folder, resolve_gguf
from theworld.modeling.names import resolve_model_name
from theworld.modeling.object_reader import ObjectReader
from theworld.modeling.presets import SMALL_SIGLIP
from theworld.modeling.world_encoder import VAE_CLASSES, WorldEncoder
from theworld.modeling.world_projector import WorldProjector
from theworld.omni.audio_encoder import AudioEncoder

__all__ = ["TheWorld"]

_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision")


@dataclass
class WorldInputs:
    """A prompt with its world blocks inserted; `text_positions[b, i]` is where token i of row b went."""

    input_ids: torch.LongTensor
    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    labels: torch.Tensor | None
    text_positions: torch.LongTensor


class TheWorld(Gemma3ForConditionalGeneration):
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

    def _world_steps(self, num_world_steps: int | None, skip_world_tokens: bool, has_image: bool) -> int | None:
        """The number of imagined frames for this call, or None when the call is plain Gemma 3."""
        if num_world_steps is not None:
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
            if num_world_steps > 0 and not has_image and not skip_world_tokens:
                raise ValueError(
                    f"num_world_steps={num_world_steps} imagines the future of an image, but the prompt has none; "
                    "add an image to the conversation or use num_world_steps=0"
                )
        if skip_world_tokens or not self.config.enable_world or not has_image:
            return None
        return self.config.num_world_steps if num_world_steps is None else num_world_steps

    def imagine(self, frames: torch.Tensor, num_world_steps: int) -> torch.Tensor:
        """Latents of the current frame and its imagined future: images (N, 3, H, W) or clips (N, T, 3, H, W) in
        [-1, 1] -> (N, 1 + k, C, h, w). A clip's last frame is the current one; its earlier frames are the
        dynamics' context."""
        clips = frames if frames.dim() == 5 else frames.unsqueeze(1)
        latents = self.world_encoder.encode(clips.to(self.device, self.dtype))
        return torch.cat([latents[:, -1:], self.dynamics.rollout(latents, num_world_steps)], dim=1)

    @torch.no_grad()
    def imagine_frames(self, image, num_world_steps: int | None = None) -> torch.Tensor:
        """The decoded current frame and imagined future of one image: (1 + k, 3, H, W) in [-1, 1]."""
        steps = self.config.num_world_steps if num_world_steps is None else num_world_steps
        self._world_steps(steps, skip_world_tokens=False, has_image=True)  # the same checks as generate
        pixel_values = self.processor.image_processor(images=[load_image(image)], return_tensors="pt")["pixel_values"]
        latents = self.imagine(pixel_values, steps)
        return self.world_encoder.decode(latents)[0]

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

    def build_world_inputs(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor,
        num_world_steps: int,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        world_latents: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        world_object_states: torch.Tensor | None = None,
    ) -> WorldInputs:
        """Insert a world block before every `<start_of_image>` and embed the whole prompt.

        `world_latents` (N, 1 + k, C, h, w), when given, replace encoding and imagining from `pixel_values`
        (training caches them), and `world_object_states` (N, 1 + k, objects, state) the object reader's
        reading of them (training caches it too, while the reader's detector is frozen). Rows keep their padding
        side: a right-padded batch (training) stays right-padded, otherwise rows are left-padded to the longest,
        as generation needs.
        """
        if input_ids is None:
            raise ValueError("World-aware calls need input_ids (the world tokens are placed by token position)")
        pixel_values = pixel_values.to(self.dtype)
        sow, eow, world_id = self.config.world_token_ids
        if world_latents is None:
            world_latents = self.imagine(pixel_values, num_world_steps)
        if world_object_states is not None:
            world_object_states = world_object_states[:, : num_world_steps + 1].to(self.dtype)
        world_embeds, courses = self.project_world(
            world_latents[:, : num_world_steps + 1].to(self.dtype), world_object_states
        )
        block = world_embeds.shape[1] + 2
        batch, length = input_ids.shape
        device = input_ids.device
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)

        is_boi = input_ids == self.config.boi_token_id
        images_per_row = is_boi.sum(1)
        if int(images_per_row.sum()) != world_embeds.shape[0]:
            raise ValueError(
                f"The prompt has {int(images_per_row.sum())} <start_of_image> tokens for {world_embeds.shape[0]} "
                "images; build the inputs with this model's processor"
            )
        new_lengths = length + images_per_row * block
        total = int(new_lengths.max())
        right_padded = bool((attention_mask[:, -1] == 0).any())
        row_offset = torch.zeros_like(new_lengths) if right_padded else total - new_lengths
        text_positions = torch.arange(length, device=device) + is_boi.cumsum(1) * block + row_offset[:, None]

        pad_id = self.config.text_config.pad_token_id or 0
        ids = torch.full((batch, total), pad_id, dtype=input_ids.dtype, device=device)
        ids.scatter_(1, text_positions, input_ids)
        mask = torch.zeros((batch, total), dtype=attention_mask.dtype, device=device)
        mask.scatter_(1, text_positions, attention_mask)

        image_rows, image_cols = is_boi.nonzero(as_tuple=True)  # row-major: the order pixel_values come in
        block_positions = text_positions[image_rows, image_cols][:, None] - block + torch.arange(block, device=device)
        block_rows = image_rows[:, None].expand_as(block_positions)
        block_ids = torch.full((block,), world_id, dtype=ids.dtype, device=device)
        block_ids[0], block_ids[-1] = sow, eow
        ids[block_rows, block_positions] = block_ids
        mask[block_rows, block_positions] = 1

        embeds, heard_ids, fillers = self._embed_inputs(ids, pixel_values, input_features, input_features_mask)
        if fillers is not None:
            mask = mask.masked_fill(fillers, 0)
        embeds[block_rows[:, 1:-1], block_positions[:, 1:-1]] = world_embeds.to(embeds.dtype)
        if courses is not None:
            first_image = torch.cumsum(images_per_row, 0) - images_per_row  # global index of each row's first image
            seen = (ids == self.config.boi_token_id).cumsum(1)
            image_of = torch.where(seen > 0, first_image[:, None] + seen - 1, -1)  # the latest image, -1 before any
            # Spoken names count too: heard_ids hold what the audio encoder hears at each audio token.
            embeds = _add_mentions(embeds, heard_ids, image_of, courses, self.object_reader)

        new_token_type_ids = None
        if token_type_ids is not None:
            new_token_type_ids = torch.zeros((batch, total), dtype=token_type_ids.dtype, device=device)
            new_token_type_ids.scatter_(1, text_positions, token_type_ids)
            new_token_type_ids[block_rows[:, 1:-1], block_positions[:, 1:-1]] = 1  # bidirectional, like images
        new_labels = None
        if labels is not None:
            new_labels = torch.full((batch, total), -100, dtype=labels.dtype, device=device)
            new_labels.scatter_(1, text_positions, labels)
        return WorldInputs(ids, embeds, mask, new_token_type_ids, new_labels, text_positions)

    def _merge_inputs(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor | None,
        num_world_steps: int | None,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        world_latents: torch.Tensor | None,
        input_features: torch.Tensor | None,
        input_features_mask: torch.Tensor | None,
        world_object_states: torch.Tensor | None = None,
    ) -> WorldInputs:
        """The embedded prompt with its world blocks (`num_world_steps` not None) and audio tokens; without a
        world, no token moves."""
        if num_world_steps is not None:
            return self.build_world_inputs(
                input_ids,
                pixel_values,
                num_world_steps,
                attention_mask,
                _image_types(token_type_ids),
                world_latents=world_latents,
                input_features=input_features,
                input_features_mask=input_features_mask,
                world_object_states=world_object_states,
            )
        embeds, _, fillers = self._embed_inputs(input_ids, pixel_values, input_features, input_features_mask)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        if fillers is not None:
            mask = mask.masked_fill(fillers, 0)
        return WorldInputs(input_ids, embeds, mask, _image_types(token_type_ids), None, positions)

    # ------------------------------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        token_type_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        num_world_steps: int | None = None,
        skip_world_tokens: bool = False,
        world_latents: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        world_object_states: torch.Tensor | None = None,
        **kwargs,
    ):
        """Gemma 3's forward; with the world on, the logits (and loss) are for the caller's own tokens: the
        world positions are dropped from the output, so `logits[:, i]` always follows `input_ids[:, i]`.
        `world_latents` may carry precomputed latents of the current and imagined frames, and
        `world_object_states` the object reader's reading of them (see `build_world_inputs`)."""
        prefilled = inputs_embeds is not None or (past_key_values is not None and past_key_values.get_seq_length())
        steps = None if prefilled else self._world_steps(num_world_steps, skip_world_tokens, pixel_values is not None)
        if steps is None and (input_features is None or prefilled):
            return super().forward(
                input_ids=input_ids,
                pixel_values=pixel_values,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=past_key_values,
                token_type_ids=token_type_ids,
                inputs_embeds=inputs_embeds,
                labels=labels,
                **kwargs,
            )
        kwargs.pop("logits_to_keep", None)  # the output is gathered back to the caller's positions instead
        world = self._merge_inputs(
            input_ids,
            pixel_values,
            steps,
            attention_mask,
            token_type_ids,
            world_latents,
            input_features,
            input_features_mask,
            world_object_states,
        )
        if steps is not None or position_ids is None:
            # World blocks move every later position, and hidden fillers take none: positions count what attention
            # sees, as generate counts them from the attention mask.
            position_ids = _positions(world.attention_mask)
        outputs = super().forward(
            inputs_embeds=world.inputs_embeds,
            attention_mask=world.attention_mask,
            position_ids=position_ids,
            token_type_ids=world.token_type_ids,
            past_key_values=past_key_values,
            **kwargs,
        )
        index = world.text_positions.unsqueeze(-1).expand(-1, -1, outputs.logits.shape[-1])
        outputs.logits = outputs.logits.gather(1, index)
        if labels is not None:
            outputs.loss = self.loss_function(
                logits=outputs.logits, labels=labels, vocab_size=self.config.text_config.vocab_size
            )
        return outputs

    # --------------------------------------------------------------------------------------- generation
    def prepare_inputs_for_generation(
        self, input_ids, past_key_values=None, inputs_embeds=None, is_first_iteration=False, **kwargs
    ):
        # Naming inputs_embeds here is what lets transformers' generate accept the merged world prompt.
        return super().prepare_inputs_for_generation(
            input_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        num_world_steps: int | None = None,
        skip_world_tokens: bool = False,
        world_latents: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        **kwargs,
    ):
        """transformers' `generate`, plus `num_world_steps` (imagined future frames per image, default
        `config.num_world_steps`), `skip_world_tokens` (the plain Gemma 3 ablation) and `world_latents`
        (precomputed, e.g. `imagine` of a video clip). Every decoding mode of `generate` works; the output
        starts with the caller's `input_ids`, as in Gemma 3."""
        steps = self._world_steps(num_world_steps, skip_world_tokens, pixel_values is not None)
        if steps is None and input_features is None:
            if self.config.enable_world:
                kwargs["skip_world_tokens"] = True
            return super().generate(
                input_ids=input_ids,
                pixel_values=pixel_values,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                **kwargs,
            )
        # World and speech tokens are embedded once here; every generate step reads them from the KV cache.
        world = self._merge_inputs(
            input_ids,
            pixel_values,
            steps,
            attention_mask,
            token_type_ids,
            world_latents,
            input_features,
            input_features_mask,
        )
        output = super().generate(
            input_ids=world.input_ids,
            inputs_embeds=world.inputs_embeds,
            attention_mask=world.attention_mask,
            token_type_ids=world.token_type_ids,
            **kwargs,
        )
        return _replace_prompt(output, input_ids, world.input_ids.shape[1])

    @property
    def processor(self):
        """The processor saved with this checkpoint, loaded on first use."""
        if self._processor is None:
            self._processor = AutoProcessor.from_pretrained(self.name_or_path)
        return self._processor

    @processor.setter
    def processor(self, processor) -> None:
        self._processor = processor

    def ask(self, image, prompt: str, num_world_steps: int | None = None, **generation_kwargs) -> str:
        """Answer `prompt` about one image (a path, a PIL image or an HxWx3 uint8 array)."""
        messages = [
            {
                "role": "user",
                "content": [{"type": "image", "image": load_image(image)}, {"type": "text", "text": prompt}],
            }
        ]
        inputs = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        ).to(self.device)
        generation_kwargs.setdefault("max_new_tokens", 32)
        output = self.generate(**inputs, num_world_steps=num_world_steps, **generation_kwargs)
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return self.processor.decode(new_tokens, skip_special_tokens=True).strip()

    # ------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *model_args,
        enable_world: bool | None = None,
        cosmos_model_name: str | None = None,
        cosmos_subfolder: str | None = "vae",
        world_encoder_type: str = "wan",
        config: TheWorldConfig | None = None,
        **kwargs,
    ) -> "TheWorld":
        """Load (a) a saved TheWorld, or (b) a Gemma 3 checkpoint with fresh world parts (and the VAE weights
        of `cosmos_model_name` when given), from a local folder or a Hub id (cache, HF_HUB_OFFLINE, token)."""
        path = resolve_model_name(pretrained_model_name_or_path)
        gguf_file = kwargs.pop("gguf_file", None)
        if gguf_file is not None or path in GGUF_MODELS or path.endswith(".gguf"):
            # Dequantized once into a cached safetensors folder: later loads take a second, not 40.
            path = str(convert_gguf_to_folder(resolve_gguf(Path(path) / gguf_file if gguf_file else path)))
        hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if key in kwargs}
        if config is None:
            config = AutoConfig.from_pretrained(path, subfolder=kwargs.get("subfolder", ""), **hub_kwargs)
        new_world = False
        if isinstance(config, TheWorldConfig):
            if enable_world is not None:
                config.enable_world = enable_world
        elif config.model_type == "gemma3":
            world = {"enable_world": True if enable_world is None else enable_world}
            if cosmos_model_name is not None:
                world["world_encoder_type"] = world_encoder_type
                world["world_encoder_config"] = _vae_config(
                    world_encoder_type, cosmos_model_name, cosmos_subfolder, hub_kwargs
                )
            config = TheWorldConfig.from_gemma3(config, **world)
            new_world = config.enable_world
        elif config.model_type == "gemma3_text":
            return cls._from_text_checkpoint(path, config, enable_world, kwargs)
        else:
            raise ValueError(
                f"{path} holds a {config.model_type!r} model; TheWorld loads Gemma 3 ('gemma3', 'gemma3_text') "
                "and TheWorld ('theworld') checkpoints"
            )
        model = super().from_pretrained(path, *model_args, config=config, **kwargs)
        if new_world:
            model._attach_new_world(cosmos_model_name, cosmos_subfolder, hub_kwargs)
        elif config.enable_world:
            model.world_encoder.restore_derived_buffers()
        return model

    @classmethod
    def _from_text_checkpoint(cls, path: str, text_config, enable_world: bool | None, kwargs: dict) -> "TheWorld":
        """A text-only Gemma 3 (e.g. Gemma 3 270M) as TheWorld's language model, wrapped in the multimodal class
        exactly as Gemma 3 4B's is; vision and world parts are attached freshly initialised, for training."""
        vision_config = kwargs.pop("vision_config", None) or {**SMALL_SIGLIP, "model_type": "siglip_vision_model"}
        gemma_config = Gemma3Config(
            text_config=text_config.to_dict(), vision_config=vision_config, mm_tokens_per_image=64
        )
        config = TheWorldConfig.from_gemma3(gemma_config, enable_world=True if enable_world is None else enable_world)
        config.theworld_is_base_model = getattr(text_config, "theworld_is_base_model", None)
        text_model = Gemma3ForCausalLM.from_pretrained(path, dtype=torch.float32)
        model = cls(config)
        model.model.language_model.load_state_dict(text_model.model.state_dict())
        model.tie_weights()
        model.generation_config = text_model.generation_config
        model.name_or_path = path
        if config.enable_world:
            model._attach_new_world(None, None, {})
        dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
        return model.to(dtype=dtype if isinstance(dtype, torch.dtype) else None).eval()

    def _attach_new_world(self, cosmos_model_name: str | None, cosmos_subfolder: str | None, hub_kwargs: dict):
        """Fresh world parts for a Gemma 3 checkpoint: room for the world tokens, new modules, Cosmos VAE weights."""
        vocab_size = max(*self.config.world_token_ids, self.config.image_token_id) + 1
        if vocab_size > self.config.text_config.vocab_size:
            self.resize_token_embeddings(vocab_size, mean_resizing=False)
        reference = self.lm_head.weight
        self._build_world_modules()
        for name in ("world_encoder", "dynamics", "world_projector", "object_reader"):
            if not hasattr(self, name):
                continue
            module = getattr(self, name)
            module.apply(self._init_weights)
            module.to(device=reference.device, dtype=reference.dtype)
        if cosmos_model_name is not None:
            vae_class = type(self.world_encoder.vae)
            vae = vae_class.from_pretrained(cosmos_model_name, subfolder=cosmos_subfolder, **hub_kwargs)
            self.world_encoder.vae.load_state_dict(vae.state_dict())

    @classmethod
    def from_checkpoint_hub(cls, repo_id: str, checkpoint_name: str | None = None, **kwargs) -> "TheWorld":
        """Load a training checkpoint folder (e.g. "checkpoint-1000") stored inside a Hub repo."""
        hub_kwargs = {key: kwargs.pop(key) for key in _HUB_KWARGS if key in kwargs}
        hub_kwargs.pop("force_download", None)
        patterns = [f"{checkpoint_name}/*"] if checkpoint_name else None
        local = Path(snapshot_download(repo_id, allow_patterns=patterns, **hub_kwargs))
        folder = local / checkpoint_name if checkpoint_name else local
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{repo_id} has no checkpoint {checkpoint_name!r} (no {folder.name}/config.json)")
        return cls.from_pretrained(folder, **kwargs)


def _vae_config(encoder_type: str, name: str, subfolder: str | None, hub_kwargs: dict) -> dict:
    config = dict(VAE_CLASSES[encoder_type].load_config(name, subfolder=subfolder, **hub_kwargs))
    return {key: value for key, value in config.items() if not key.startswith("_")}


def _scatter(embeds: torch.Tensor, mask: torch.Tensor, features: torch.Tensor, kind: str) -> torch.Tensor:
    count = features.numel() // embeds.shape[-1]
    if int(mask.sum()) != count:
        raise ValueError(
            f"The prompt has {int(mask.sum())} {kind} tokens but the {kind} inputs give {count} features; "
            "build the inputs with this model's processor"
        )
    return embeds.masked_scatter(mask.unsqueeze(-1), features.to(embeds.dtype))


def _positions(attention_mask: torch.Tensor) -> torch.LongTensor:
    """Position ids that count only the tokens attention sees (as `generate` derives them)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _add_mentions(
    embeds: torch.Tensor, ids: torch.Tensor, image_of: torch.Tensor, courses: torch.Tensor, reader: ObjectReader
) -> torch.Tensor:
    """Add to every token naming an object (`reader.slot_token_ids`) after an image the embedding of that object
    as the latest image before it (`image_of`, -1 before the first) shows it, and of its relation to the object
    named just before it after the same image: entity injection, as knowledge-enhanced LMs (ERNIE, KnowBERT)
    add an entity's embedding to its mentions. A tiny language model trained for minutes does not learn to look
    an object up by name among the world tokens (the README's "ToyWorld and TheWorld-tiny"); here the name
    carries it."""
    if reader.kind_token_ids is not None:
        embeds = _add_kind_mentions(embeds, ids, image_of, courses, reader)
    is_name = ids.unsqueeze(-1) == torch.tensor(reader.slot_token_ids, device=ids.device)
    rows, positions = (is_name.any(-1) & (image_of >= 0)).nonzero(as_tuple=True)  # row-major: prompt order
    if len(rows) == 0:
        return embeds
    images, slots = image_of[rows, positions], is_name[rows, positions].int().argmax(-1)
    mentioned = courses[images, slots]
    # The object named before: the last mention of another object after the same image (a word heard over
    # several audio frames is several mentions of one object, not a pair).
    before, run_slot, run_before = [], None, -1
    for m, (image, slot) in enumerate(zip(images.tolist(), slots.tolist(), strict=True)):
        if m == 0 or image != images[m - 1]:  # image indices are global, so this is also a new row
            run_slot, run_before = None, -1
        if slot != run_slot:
            run_before = m - 1 if run_slot is not None else -1
            run_slot = slot
        before.append(run_before)
    before = torch.tensor(before, device=ids.device)
    previous = torch.where((before >= 0).unsqueeze(-1), mentioned[before.clamp(min=0)], 0.0)
    added = reader.embed_mentions(mentioned, previous).to(embeds.dtype)
    return embeds.index_put((rows, positions), added, accumulate=True)


def _add_kind_mentions(
    embeds: torch.Tensor, ids: torch.Tensor, image_of: torch.Tensor, courses: torch.Tensor, reader: ObjectReader
) -> torch.Tensor:
    """Add to every kind word after an image ("triangle") which of that image's objects are of that kind."""
    is_kind = ids.unsqueeze(-1) == torch.tensor(reader.kind_token_ids, device=ids.device)
    rows, positions = (is_kind.any(-1) & (image_of >= 0)).nonzero(as_tuple=True)
    if len(rows) == 0:
        return embeds
    kinds = is_kind[rows, positions].int().argmax(-1)
    added = reader.embed_kind_mentions(courses[image_of[rows, positions]], kinds).to(embeds.dtype)
    return embeds.index_put((rows, positions), added, accumulate=True)


def _image_types(token_type_ids: torch.Tensor | None) -> torch.Tensor | None:
    """Gemma 3 reads token type 1 as "image" (bidirectional attention); the processor marks audio tokens 3, and
    they stay causal."""
    return None if token_type_ids is None else (token_type_ids == 1).to(token_type_ids.dtype)


def _replace_prompt(output, input_ids: torch.LongTensor, merged_length: int):
    """Swap the merged world prompt at the head of generate's output for the caller's own prompt ids."""
    sequences = output.sequences if isinstance(output, ModelOutput) else output
    prompt = input_ids.repeat_interleave(sequences.shape[0] // input_ids.shape[0], dim=0)
    sequences = torch.cat([prompt, sequences[:, merged_length:]], dim=1)
    if isinstance(output, ModelOutput):
        output.sequences = sequences
        return output
    return sequences
