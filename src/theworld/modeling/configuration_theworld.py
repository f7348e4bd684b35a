"""`TheWorldConfig`: a Gemma 3 config plus the world encoder, dynamics and projector settings."""

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, Gemma3Config
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping

__all__ = ["TINY_WAN_VAE", "TheWorldConfig"]

# A Wan VAE small enough to train on CPU in minutes (64x64 frames -> 8 x 16 x 16 latents). Latent mean/std of
# 0/1: trained from scratch, it has no statistics until the recipe measures them.
TINY_WAN_VAE = {
    "base_dim": 8,
    "z_dim": 8,
    "dim_mult": [1, 2, 2],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True],
    "latents_mean": [0.0] * 8,
    "latents_std": [1.0] * 8,
}


@strict
class TheWorldConfig(Gemma3Config):
    r"""
    Gemma 3 with a world model. Every Gemma 3 field keeps its meaning; the world adds:

    enable_world (`bool`): build and use the world parts. False gives exactly Gemma 3.
    world_encoder_type (`str`): "wan" (`diffusers.AutoencoderKLWan`, Cosmos-Predict2's VAE) or "cosmos"
        (`diffusers.AutoencoderKLCosmos`).
    world_encoder_config (`dict`): the diffusers VAE's own config (what its `config.json` holds).
    world_image_size (`int`): frames are resized to this square size before the VAE.
    world_pool (`int`): latent pixels per side merged into one world token (space-to-depth).
    world_projector_hidden_size (`int`): hidden width of the projector MLP; None uses the text hidden size.
    world_objects (`dict`): when set, the world also has an object reader (`theworld.modeling.object_reader`):
        one more world token per named object slot per frame, after the frame's space-to-depth regions, and the
        object's reading added at every mention of its name. Keys: "names" (one word per slot, e.g. the palette
        colours), "token_ids" (each name's token id), "num_kinds" (object kinds it classifies), "hidden_size"
        (the detector's width), and optionally "kinds" / "kind_token_ids" (the kind words and their ids: the reader
        then also decodes facts for the mentions and reads kind words, see `object_reader.py`), and "asked_facts"
        (with kinds: the pair facts a mention gets are also picked by the question's words).
    max_world_steps (`int`): the largest `num_world_steps` the temporal embedding covers.
    num_world_steps (`int`): the default number of imagined future frames at generation.
    dynamics_config (`dict`): settings of the dynamics model (see `theworld.modeling.dynamics`).
    start_of_world_token_id / end_of_world_token_id / world_token_id (`int`): the world special tokens.
    audio_config (`dict`): a `Gemma3nAudioConfig` for the audio encoder (speech in), plus `ctc_compression`
        (one token per heard word, see `theworld.omni.audio_encoder`; absent: one per 80 ms); None: no audio input.
    audio_token_id (`int`): the `<audio_soft_token>` the audio encoder's tokens replace.
    """

    model_type = "theworld"

    enable_world: bool = True
    world_encoder_type: str = "wan"
    world_encoder_config: dict[str, Any] | None = None
    world_image_size: int = 64
    world_pool: int = 2
    world_projector_hidden_size: int | None = None
    world_objects: dict[str, Any] | None = None
    max_world_steps: int = 8
    num_world_steps: int = 0
    dynamics_config: dict[str, Any] | None = None
    start_of_world_token_id: int | None = None
    end_of_world_token_id: int | None = None
    world_token_id: int | None = None
    audio_config: dict[str, Any] | None = None
    audio_token_id: int | None = None

    def __post_init__(self, **kwargs):
        if self.world_encoder_config is None:
            self.world_encoder_config = dict(TINY_WAN_VAE)
        if self.dynamics_config is None:
            self.dynamics_config = {}
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject impossible world settings at construction, before any weights are built."""
        super().validate_architecture()
        if self.world_encoder_type not in ("wan", "cosmos"):
            raise ValueError(f"world_encoder_type must be 'wan' or 'cosmos', got {self.world_encoder_type!r}")
        if self.world_pool < 1 or self.max_world_steps < 0 or self.num_world_steps < 0:
            raise ValueError("world_pool must be >= 1, and max_world_steps and num_world_steps >= 0")
        if self.world_objects is not None:
            names, ids = self.world_objects.get("names", []), self.world_objects.get("token_ids", [])
            if not names or len(names) != len(ids):
                raise ValueError("world_objects needs as many 'token_ids' as 'names', one per object slot")
            kinds = self.world_objects.get("kind_token_ids")
            if kinds is not None and len(kinds) != self.world_objects.get("num_kinds"):
                raise ValueError("world_objects needs one 'kind_token_ids' entry per kind ('num_kinds')")
            if self.world_objects.get("asked_facts") and kinds is None:
                raise ValueError(
                    "world_objects' 'asked_facts' needs 'kind_token_ids' (an object reader that knows kinds)"
                )
        if self.audio_config is not None and self.audio_token_id is None:
            raise ValueError("audio_config needs audio_token_id (the <audio_soft_token> id)")
        if self.num_world_steps > self.max_world_steps:
            raise ValueError(f"num_world_steps={self.num_world_steps} exceeds max_world_steps={self.max_world_steps}")

    @property
    def world_token_ids(self) -> tuple[int, int, int]:
        """(start_of_world, end_of_world, world soft token) ids; set them before using the world."""
        ids = (self.start_of_world_token_id, self.end_of_world_token_id, self.world_token_id)
        if None in ids:
            raise ValueError("The world token ids are unset: build the config with TheWorldConfig.from_gemma3")
        return ids

    def to_gemma3(self) -> Gemma3Config:
        """The Gemma 3 config of the same language and vision model: what TheWorld is with the world off."""
        return Gemma3Config(
            text_config=self.text_config.to_dict(),
            vision_config=self.vision_config.to_dict(),
            mm_tokens_per_image=self.mm_tokens_per_image,
            boi_token_index=self.boi_token_index,
            eoi_token_index=self.eoi_token_index,
            image_token_index=self.image_token_index,
        )

    @classmethod
    def from_gemma3(cls, gemma_config: Gemma3Config, **world_kwargs: Any) -> "TheWorldConfig":
        """A TheWorld config for a Gemma 3 checkpoint. The world tokens get new ids after the Gemma vocabulary
        unless `world_kwargs` name them; `TheWorld.from_pretrained` resizes the embeddings to hold them."""
        fields = gemma_config.to_dict()
        for key in ("model_type", "transformers_version", "architectures", "auto_map"):
            fields.pop(key, None)
        # After the vocabulary, and after the image placeholder when it lies outside it (Gemma 3 270M's does).
        first = max(gemma_config.text_config.vocab_size, gemma_config.image_token_index + 1)
        fields.setdefault("start_of_world_token_id", first)
        fields.setdefault("end_of_world_token_id", first + 1)
        fields.setdefault("world_token_id", first + 2)
        fields.update(world_kwargs)
        return cls(**fields)


# Defining the class registers it, so `AutoConfig` reads TheWorld folders however this module was reached; Gemma 3
# checkpoints on the Hub use the older key layout (language_model.model.*): mapped as Gemma 3 maps it.
AutoConfig.register("theworld", TheWorldConfig)
register_checkpoint_conversion_mapping("theworld", get_checkpoint_conversion_mapping("gemma3"))
