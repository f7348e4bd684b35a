"""TheWorld's own keyword arguments of `forward` and `generate`, and how a call's kwargs are split between them and
the ones Gemma 3 passes on: `generate` hands everything it does not know to `forward` through its model kwargs."""

from theworld.modeling.dynamics import SAMPLING_ARGUMENTS

__all__ = ["WORLD_ARGUMENTS", "pop_sampling", "pop_world_arguments", "requested_new_tokens"]

# The arguments `forward` names beyond Gemma 3's, which `generate` takes through its kwargs (see
# `build_world_inputs`): imagined frames per image, the plain Gemma 3 ablation, cached latents and readings, speech.
WORLD_ARGUMENTS = (
    "num_world_steps",
    "skip_world_tokens",
    "world_latents",
    "world_object_states",
    "input_features",
    "input_features_mask",
)


def pop_world_arguments(kwargs: dict) -> dict:
    """TheWorld's own arguments of `forward` and `generate`, taken out of the ones Gemma 3 passes on; a diffusion
    dynamics' settings (`world_denoising_steps`, ...) go together under "world_sampling"."""
    arguments = {name: kwargs.pop(name) for name in WORLD_ARGUMENTS if name in kwargs}
    sampling = pop_sampling(kwargs)
    if sampling:
        arguments["world_sampling"] = sampling
    return arguments


def pop_sampling(kwargs: dict) -> dict:
    """A diffusion dynamics' per-call settings (`world_denoising_steps`, ...), by `rollout`'s names."""
    return {key: kwargs.pop(name) for name, key in SAMPLING_ARGUMENTS.items() if name in kwargs}


def requested_new_tokens(kwargs: dict) -> int | None:
    """The new tokens a `generate` call asks for, when it says (else the model's generation config decides)."""
    config = kwargs.get("generation_config")
    return kwargs.get("max_new_tokens") or getattr(config, "max_new_tokens", None)
