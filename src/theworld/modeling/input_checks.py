"""Checks of a call's inputs that run before any compute: pixel values that are there, finite and in the range
the model reads, and a prompt that fits the context once its world blocks and new tokens are counted.

Each raises a `ValueError` that names the argument, what is wrong with it and the fix.

The range rule: the vision tower (SigLIP) and the world encoder both read pixels in [-1, 1], what Gemma 3's image
processor gives (rescaled to [0, 1], then normalised with mean and std 0.5). Values outside [-1, 1] are refused.
So are values that all lie in [0, 1] while the smallest is below 1/8: that is what an image left in [0, 1] looks
like as soon as it has one dark pixel, while the processor gives it only for an image whose darkest channel value
is 128 to 143 of 255. A bright image (every channel value 144 or more, an all-white one included) passes.
"""

import torch

__all__ = ["check_pixel_values", "check_prompt_length"]

PIXEL_RANGE = (-1.0, 1.0)
# Slack for rounding: bf16 and fp16 pixel values may land just outside [-1, 1].
PIXEL_TOLERANCE = 1e-2
UNNORMALISED_MINIMUM = 0.125
FIX = "pass the pixel_values this model's processor returns with the input_ids"


def check_pixel_values(
    input_ids: torch.LongTensor | None, pixel_values: torch.Tensor | None, image_token_id: int
) -> None:
    """Refuse image tokens without `pixel_values`, and `pixel_values` that are not finite or not in [-1, 1]."""
    if pixel_values is None:
        images = 0 if input_ids is None else int((input_ids == image_token_id).sum())
        if images:
            raise ValueError(f"The prompt has {images} image tokens but no pixel_values; {FIX}")
        return
    if pixel_values.numel() == 0:
        raise ValueError(f"pixel_values is empty (shape {tuple(pixel_values.shape)}); {FIX}")
    if not bool(torch.isfinite(pixel_values).all()):
        raise ValueError(f"pixel_values hold NaN or infinite values; {FIX} from a valid image")
    low, high = (float(value) for value in torch.aminmax(pixel_values.detach().float()))
    lowest, highest = PIXEL_RANGE
    if low < lowest - PIXEL_TOLERANCE or high > highest + PIXEL_TOLERANCE:
        raise ValueError(
            f"pixel_values lie in [{low:.4g}, {high:.4g}], but the model reads [-1, 1] (rescaled and normalised "
            f"pixels); {FIX}, not raw pixels"
        )
    if 0.0 <= low < UNNORMALISED_MINIMUM and high <= highest:
        raise ValueError(
            f"pixel_values lie in [{low:.4g}, {high:.4g}], like pixels in [0, 1] that were not normalised to [-1, 1] "
            f"(mean and std 0.5); {FIX}"
        )


def check_prompt_length(
    input_ids: torch.LongTensor, boi_token_id: int, world_block_length: int, max_new_tokens: int, context: int
) -> None:
    """Refuse a prompt whose tokens, with a world block of `world_block_length` tokens before every image and
    `max_new_tokens` to generate, exceed `context` positions (the text model's `max_position_embeddings`)."""
    images = (input_ids == boi_token_id).sum(-1) if world_block_length else torch.zeros(1, dtype=torch.long)
    prompt = int((input_ids.shape[-1] + images * world_block_length).max())
    if prompt + max_new_tokens > context:
        world = " (world tokens included)" if world_block_length and int(images.max()) else ""
        raise ValueError(
            f"The prompt is {prompt} tokens{world} and max_new_tokens={max_new_tokens}: {prompt + max_new_tokens} "
            f"positions, over this model's context of {context} tokens; shorten the prompt or lower max_new_tokens"
        )
