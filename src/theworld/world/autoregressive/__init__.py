"""Autoregressive world generation (Cosmos-Predict1 style) over discrete video tokens.

- `tokenizer`: `VideoTokenizer`, a per-frame conv encoder/decoder with FSQ codes (diffusers format).
- `model`: `AutoregressiveWorldModel` = tokenizer + a causal Llama over codes + `TokenLayout`.
- `diffusion_decoder`: `DiffusionDecoder`, Predict1's diffusion decoder: codes -> a VAE latent (diffusers) -> frames.
- `text_to_frame`: `TextToFrame`, text2world's first frame: a prompt -> that VAE's latent (diffusers + a T5 encoder).
- `backend`: the `WorldBackend` that `get_backend("toyworld")` returns (the shipped checkpoint).

The model trains as stages of `theworld train` (`theworld.training.world_ar`, then `world_ar_decoder`, then
`world_ar_text`).
"""

from theworld.world.autoregressive.backend import AutoregressiveBackend, load_backend, shipped_checkpoint
from theworld.world.autoregressive.diffusion_decoder import DiffusionDecoder
from theworld.world.autoregressive.model import AutoregressiveWorldModel, TokenLayout
from theworld.world.autoregressive.text_to_frame import TextToFrame
from theworld.world.autoregressive.tokenizer import FSQ, VideoTokenizer

__all__ = [
    "FSQ",
    "AutoregressiveBackend",
    "AutoregressiveWorldModel",
    "DiffusionDecoder",
    "TextToFrame",
    "TokenLayout",
    "VideoTokenizer",
    "load_backend",
    "shipped_checkpoint",
]
