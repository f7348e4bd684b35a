"""Faster CPU decoding for a loaded model: `TheWorld.from_pretrained(..., quantization="q8_0", compile=True)`.

Two independent switches, both applied after the weights load, both leaving `generate` (and so the world tokens
in the prefix KV cache, streaming and every decoding mode) exactly as it is:

- `quantization="q8_0"` or `"int8"`: smaller weights for each decoded token to read (`theworld.modeling.quantization`);
- `compile=True`: `torch.compile` (inductor) of each decoder layer of the language model, so that a decode step
  could run fused kernels instead of one Python-dispatched op at a time. It gives the same tokens, but on a small
  AVX2 CPU it compiles for minutes and decodes slower than eager, since transformers' KV cache and each layer's
  index make dynamo recompile; so it is off by default. Inductor keeps what it compiled in its on-disk
  cache (`TORCHINDUCTOR_CACHE_DIR`); what that saves a later process was not measured.

What each buys on a given machine is measured by `benchmarks/real_gemma.py` and `benchmarks/generation.py`
(figures in docs/real-gemma.md).
"""

from torch import nn

from theworld.modeling.quantization import check_quantization, quantize

__all__ = ["check_fast_decode", "prepare_fast_decode"]


def check_fast_decode(quantization: str | None, compile: bool) -> None:
    """Refuse impossible settings before any weight loads."""
    check_quantization(quantization)
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")


def prepare_fast_decode(model: nn.Module, quantization: str | None = None, compile: bool = False) -> nn.Module:
    """Quantize and/or compile `model`'s language model in place for decoding (see the module); returns it."""
    check_fast_decode(quantization, compile)
    if quantization is not None:
        quantize(model, quantization)
    if compile:
        for layer in model.get_decoder().layers:
            layer.compile(dynamic=True)
    return model
