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
from transformers import AutoModelForImageTextToText
from transformers.modeling_outputs import ModelOutput

import theworld.modeling.processing_theworld  # noqa: F401 - registers the processor `model.processor` loads
from theworld.media import load_image
from theworld.modeling.configuration_theworld import TheWorldConfig
from theworld.modeling.fast_decode import check_fast_decode, prepare_fast_decode
from theworld.modeling.loading import HUB_KWARGS, download_checkpoint, load_pretrained
from theworld.modeling.object_reader import latest_image
from theworld.modeling.parts import TheWorldParts
from theworld.modeling.world_arguments import WORLD_ARGUMENTS, pop_sampling, pop_world_arguments, requested_new_tokens
from theworld.modeling.world_blocks import insert_world_blocks

__all__ = ["WORLD_ARGUMENTS", "TheWorld", "WorldInputs"]


@dataclass
class WorldInputs:
    """A prompt embedded for a world or speech call; `text_positions[b, i]` is where token i of row b went, and
    `world_steps` the imagined frames of its world blocks (None when it has none and no token moved)."""

    input_ids: torch.LongTensor
    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    text_positions: torch.LongTensor
    world_steps: int | None


class TheWorld(TheWorldParts):
    """Gemma 3 with world tokens (see the module); its parts and what each computes are `TheWorldParts`'."""

    # ------------------------------------------------------------------------------------ the merge step
    def build_world_inputs(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor,
        num_world_steps: int,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        world_latents: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        world_object_states: torch.Tensor | None = None,
        world_sampling: dict | None = None,
    ) -> WorldInputs:
        """Insert a world block before every `<start_of_image>` and embed the whole prompt.

        `world_latents` (N, 1 + k, C, h, w), when given, replace encoding and imagining from `pixel_values`
        (training caches them), and `world_object_states` (N, 1 + k, objects, state) the object reader's
        reading of them (training caches it too, while the reader's detector is frozen). `world_sampling` holds a
        diffusion dynamics' per-call settings (`imagine`). Rows keep their padding side (`insert_world_blocks`).
        """
        if input_ids is None:
            raise ValueError("World-aware calls need input_ids (the world tokens are placed by token position)")
        pixel_values = pixel_values.to(self.dtype)
        if world_latents is None:
            world_latents = self.imagine(pixel_values, num_world_steps, **(world_sampling or {}))
        if world_object_states is not None:
            world_object_states = world_object_states[:, : num_world_steps + 1].to(self.dtype)
        world_embeds, courses = self.project_world(
            world_latents[:, : num_world_steps + 1].to(self.dtype), world_object_states
        )
        images = int((input_ids == self.config.boi_token_id).sum())
        if images != world_embeds.shape[0]:
            raise ValueError(
                f"The prompt has {images} <start_of_image> tokens for {world_embeds.shape[0]} "
                "images; build the inputs with this model's processor"
            )
        blocks = insert_world_blocks(
            input_ids,
            attention_mask,
            token_type_ids,
            self.config.boi_token_id,
            world_embeds.shape[1] + 2,
            self.config.world_token_ids,
            self.config.text_config.pad_token_id or 0,
        )
        embeds, heard_ids, fillers = self._embed_inputs(
            blocks.input_ids, pixel_values, input_features, input_features_mask
        )
        mask = blocks.attention_mask if fillers is None else blocks.attention_mask.masked_fill(fillers, 0)
        embeds[blocks.world_token_index] = world_embeds.to(embeds.dtype)
        if courses is not None:
            # Spoken names count too: heard_ids hold what the audio encoder hears at each audio token.
            image_of = latest_image(blocks.input_ids, self.config.boi_token_id)
            words = self.question_words(heard_ids)
            embeds = self.object_reader.add_mentions(embeds, heard_ids, image_of, courses, words)
        return WorldInputs(
            blocks.input_ids, embeds, mask, blocks.token_type_ids, blocks.text_positions, num_world_steps
        )

    def _merge_inputs(
        self,
        input_ids: torch.LongTensor | None,
        pixel_values: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        num_world_steps: int | None = None,
        skip_world_tokens: bool = False,
        world_latents: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        world_object_states: torch.Tensor | None = None,
        world_sampling: dict | None = None,
    ) -> WorldInputs | None:
        """The embedded prompt of a world or speech call, shared by `forward` and `generate`: its world blocks
        (when `_world_steps` says this call has a world) and its audio tokens; without a world, no token moves.
        None when the call is plain Gemma 3 (no world and nothing to hear)."""
        steps = self._world_steps(num_world_steps, skip_world_tokens, pixel_values is not None)
        if steps is not None:
            return self.build_world_inputs(
                input_ids,
                pixel_values,
                steps,
                attention_mask,
                _image_types(token_type_ids),
                world_latents=world_latents,
                input_features=input_features,
                input_features_mask=input_features_mask,
                world_object_states=world_object_states,
                world_sampling=world_sampling,
            )
        if input_features is None:
            return None
        embeds, _, fillers = self._embed_inputs(input_ids, pixel_values, input_features, input_features_mask)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        if fillers is not None:
            mask = mask.masked_fill(fillers, 0)
        return WorldInputs(input_ids, embeds, mask, _image_types(token_type_ids), positions, None)

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
        world_object_states: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ):
        """Gemma 3's forward; with the world on, the logits (and loss) are for the caller's own tokens: the
        world positions are dropped from the output, so `logits[:, i]` always follows `input_ids[:, i]`.
        `world_latents` may carry precomputed latents of the current and imagined frames, and
        `world_object_states` the object reader's reading of them (see `build_world_inputs`). `logits_to_keep`
        is Gemma 3's: `generate` asks for the last position only, so the output layer skips the rest."""
        prefilled = inputs_embeds is not None or (past_key_values is not None and past_key_values.get_seq_length())
        world = None
        if not prefilled:  # decode steps read the world and speech tokens from the cache
            self.check_inputs(input_ids, pixel_values, num_world_steps, skip_world_tokens, max_new_tokens=0)
            world = self._merge_inputs(
                input_ids,
                pixel_values,
                attention_mask,
                token_type_ids,
                num_world_steps=num_world_steps,
                skip_world_tokens=skip_world_tokens,
                world_latents=world_latents,
                world_object_states=world_object_states,
                input_features=input_features,
                input_features_mask=input_features_mask,
            )
        if world is None:
            return super().forward(
                input_ids=input_ids,
                pixel_values=pixel_values,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=past_key_values,
                token_type_ids=token_type_ids,
                inputs_embeds=inputs_embeds,
                labels=labels,
                logits_to_keep=logits_to_keep,
                **kwargs,
            )
        text_positions = world.text_positions
        merged_length = world.inputs_embeds.shape[1]
        if isinstance(logits_to_keep, int) and logits_to_keep > 0 and labels is None:
            tail = torch.arange(merged_length - logits_to_keep, merged_length, device=text_positions.device)
            if bool((text_positions[:, -logits_to_keep:] == tail).all()):
                # The caller's last tokens end every merged row (world blocks come before images, never last):
                # Gemma 3 computes the output layer at those positions only, and they need no gathering.
                kwargs["logits_to_keep"], text_positions = logits_to_keep, None
        if world.world_steps is not None or position_ids is None:
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
        if text_positions is not None:
            index = text_positions.unsqueeze(-1).expand(-1, -1, outputs.logits.shape[-1])
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
        **kwargs,
    ):
        """transformers' `generate`, plus `num_world_steps` (imagined future frames per image, default
        `config.num_world_steps`), `skip_world_tokens` (the plain Gemma 3 ablation) and `world_latents`
        (precomputed, e.g. `imagine` of a video clip); with a Cosmos dynamics, `world_denoising_steps`,
        `world_guidance`, `world_seed` and `world_prompt` set its sampling for this call. Every decoding mode of
        `generate` works; the output starts with the caller's `input_ids`, as in Gemma 3."""
        arguments = pop_world_arguments(kwargs)
        self.check_inputs(
            input_ids,
            pixel_values,
            arguments.get("num_world_steps"),
            arguments.get("skip_world_tokens", False),
            requested_new_tokens(kwargs),
        )
        # World and speech tokens are embedded once here; every generate step reads them from the KV cache.
        world = self._merge_inputs(input_ids, pixel_values, attention_mask, token_type_ids, **arguments)
        if world is None:
            if self.config.enable_world:
                kwargs["skip_world_tokens"] = True
            return super().generate(
                input_ids=input_ids,
                pixel_values=pixel_values,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                **kwargs,
            )
        output = super().generate(
            input_ids=world.input_ids,
            inputs_embeds=world.inputs_embeds,
            attention_mask=world.attention_mask,
            token_type_ids=world.token_type_ids,
            **kwargs,
        )
        return _replace_prompt(output, input_ids, world.input_ids.shape[1])

    def ask(
        self,
        image,
        prompt: str,
        num_world_steps: int | None = None,
        return_world_latents: bool = False,
        **generation_kwargs,
    ) -> "str | tuple[str, torch.Tensor]":
        """Answer `prompt` about one image (a path, a PIL image or an HxWx3 uint8 array). With
        `return_world_latents`, also return the latents the answer read, (1, 1 + k, C, h, w), to draw them
        (`world_encoder.decode`): one imagining serves both, after the inputs are checked."""
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
        latents = None
        if return_world_latents:
            if not self.config.enable_world:
                raise ValueError(
                    "This model has no world model (enable_world=False), so it imagines no world to return"
                )
            steps = self.config.num_world_steps if num_world_steps is None else num_world_steps
            pixel_values = inputs["pixel_values"].to(self.dtype)
            self.check_inputs(
                inputs["input_ids"], pixel_values, steps, max_new_tokens=generation_kwargs["max_new_tokens"]
            )
            sampling = pop_sampling(generation_kwargs)
            with torch.no_grad():
                latents = generation_kwargs["world_latents"] = self.imagine(pixel_values, steps, **sampling)
        output = self.generate(**inputs, num_world_steps=num_world_steps, **generation_kwargs)
        answer = self.processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        return (answer, latents) if return_world_latents else answer

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
        dynamics_type: str | None = None,
        quantization: str | None = None,
        compile: bool = False,
        **kwargs,
    ) -> "TheWorld":
        """Load (a) a saved TheWorld, or (b) a Gemma 3 checkpoint with fresh world parts (and the VAE weights
        of `cosmos_model_name` when given), from a local folder or a Hub id (cache, HF_HUB_OFFLINE, token).
        `dynamics_type="cosmos"` makes the transformer and scheduler of `cosmos_model_name` (a Cosmos-Predict2/2.5
        diffusers folder) the dynamics (`theworld.modeling.cosmos_dynamics`). `quantization="q8_0"` shrinks the
        weights CPU decoding reads; `compile=True` compiles the decoder layers (`theworld.modeling.fast_decode`)."""
        check_fast_decode(quantization, compile)
        model = load_pretrained(
            cls,
            super().from_pretrained,
            pretrained_model_name_or_path,
            *model_args,
            enable_world=enable_world,
            cosmos_model_name=cosmos_model_name,
            cosmos_subfolder=cosmos_subfolder,
            world_encoder_type=world_encoder_type,
            config=config,
            dynamics_type=dynamics_type,
            **kwargs,
        )
        return prepare_fast_decode(model, quantization, compile)

    @classmethod
    def from_checkpoint_hub(cls, repo_id: str, checkpoint_name: str | None = None, **kwargs) -> "TheWorld":
        """Load a training checkpoint folder (e.g. "checkpoint-1000") stored inside a Hub repo."""
        hub_kwargs = {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}
        return cls.from_pretrained(download_checkpoint(repo_id, checkpoint_name, hub_kwargs), **kwargs)


def _positions(attention_mask: torch.Tensor) -> torch.LongTensor:
    """Position ids that count only the tokens attention sees (as `generate` derives them)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


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


# Defining the model registers it (and its processor, imported above): the Auto classes load TheWorld folders
# however the model was reached.
AutoModelForImageTextToText.register(TheWorldConfig, TheWorld)
