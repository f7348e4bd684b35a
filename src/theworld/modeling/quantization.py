"""Smaller weights for decoding on a CPU: `quantize(model, "q8_0")` or `quantize(model, "int8")`.

Decoding one token reads every weight of the language model once, so on a CPU its speed is the memory bandwidth
divided by the weight bytes. Gemma 3's tied 262k-row embedding, which is also the output projection, is most of
those bytes (168M of Gemma 3 270M's 268M parameters). Both quantizations shrink what each token reads; the
embedding lookup keeps its fp32 table, since a lookup reads one row.

- `q8_0` (the faster and closer to fp32, where it runs): every linear layer and the output projection in GGUF's
  Q8_0 blocks (32 int8 weights and an fp16 scale), multiplied by activations rounded to 16 bits in blocks of 32
  (`theworld.modeling.block_quantization`: a small AVX2 kernel compiled on first use).
- `int8` (any x86 PyTorch): the output projection in int8 with one scale per vocabulary row and the other layers
  in fp16, on PyTorch's fbgemm kernels. fbgemm rounds the activations to 8 bits with one scale per row; Gemma's
  hidden activations have outliers that this rounding destroys inside the layers (greedy text diverges), but the
  output projection's input is normalised and survives it, so int8 goes there only (`reduce_range=False` keeps
  the full 8-bit range, which halves the divergence from the 7-bit default).

Why these and not the int8/int4 weight-only kernels of torch (`_weight_int8pack_mm`, `_weight_int4pack_mm_for_cpu`)
or torchao: on CPUs without AVX-512 those run far below memory speed, slower than the fp32 weights they replace
(measured on Gemma 3 270M, docs/real-gemma.md).

A small model's decode step spends as long in Python as in reading weights, so both also cut calls: `q8_0` makes
each decoder layer a `FusedGemma3DecoderLayer` (q, k, v and gate, up fused; its norms in the kernel), `int8` runs
Gemma 3's RMSNorm as one `F.rms_norm` (`FusedRMSNorm`). The model stays a transformers model (generate, the KV
cache and the world tokens all work unchanged); it is for inference: save the fp32 model, and quantize after
loading.
"""

import warnings

import torch
from torch import nn
from torch.nn import functional as F
from transformers.models.gemma3.modeling_gemma3 import Gemma3DecoderLayer, Gemma3RMSNorm

from theworld.modeling.block_quantization import BlockLinear, check_block_kernel
from theworld.modeling.fused_layers import FusedGemma3DecoderLayer

__all__ = ["QUANTIZATIONS", "FusedRMSNorm", "check_quantization", "quantize"]

QUANTIZATIONS = ("int8", "q8_0")


class Int8Linear(nn.Module):
    """`x @ weight.T` with int8 weights (a scale per output row) and 8-bit dynamic activations (fbgemm)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        weight = weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127).clamp(min=torch.finfo(torch.float32).tiny).double()
        zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
        with warnings.catch_warnings():  # quantized tensors are deprecated; fbgemm's packed weights are what we keep
            warnings.simplefilter("ignore")
            quantized = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(quantized, None)
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.nbytes = weight.numel() + 4 * weight.shape[0]  # what one call reads: the weights and their scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self.packed, False)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class FusedRMSNorm(nn.Module):
    """Gemma 3's RMSNorm, `x * rsqrt(mean(x^2) + eps) * (1 + weight)` in fp32, as one `F.rms_norm` call with
    `1 + weight` computed once: the same values in a third of the Python time, which a decode step spends over a
    hundred times (six norms a layer)."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.scale = (1.0 + norm.weight.detach().float()).contiguous()
        self.eps = norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), self.scale.shape, self.scale, self.eps).type_as(x)


class Float16Linear(nn.Module):
    """`nn.Linear` with its weights stored in fp16 (fbgemm), computing in fp32."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        bias = None if linear.bias is None else linear.bias.detach().float()
        self.packed = torch.ops.quantized.linear_prepack_fp16(linear.weight.detach().float(), bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.nbytes = 2 * linear.weight.numel() + (0 if bias is None else bias.nbytes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic_fp16(x, self.packed)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp16 weights"


def check_quantization(quantization: str | None) -> None:
    """Refuse an unknown quantization, or one this machine has no kernels for, before any weight loads."""
    if quantization is None:
        return
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"quantization={quantization!r} is not available; choose one of {list(QUANTIZATIONS)} or None "
            "(int4 has no CPU kernel here that beats q8_0: see docs/real-gemma.md)"
        )
    if quantization == "q8_0":
        check_block_kernel()
    elif "fbgemm" not in torch.backends.quantized.supported_engines:
        raise ValueError(
            f"quantization={quantization!r} needs PyTorch's fbgemm kernels (x86 CPUs); this build has "
            f"{torch.backends.quantized.supported_engines}: load the model without quantization"
        )


def quantize(model: nn.Module, quantization: str) -> nn.Module:
    """Quantize a Gemma 3 (or TheWorld) language model in place for CPU decoding (see the module); returns it."""
    check_quantization(quantization)
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Linear) or head.weight.device.type != "cpu" or head.weight.dtype != torch.float32:
        raise ValueError(
            "quantization works on an fp32 model on the CPU; load it with dtype=torch.float32 and device 'cpu'"
        )
    decoder = model.get_decoder()
    if quantization == "q8_0":
        decoder.layers = nn.ModuleList(
            FusedGemma3DecoderLayer(layer) if type(layer) is Gemma3DecoderLayer else layer for layer in decoder.layers
        )
    for module in list(decoder.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, _layer(child, quantization))
            elif type(child) is Gemma3RMSNorm:
                setattr(module, name, FusedRMSNorm(child))
    model.set_output_embeddings(Int8Linear(head.weight) if quantization == "int8" else BlockLinear(head.weight))
    model.save_pretrained = _refuse_to_save  # the packed weights are not in the state dict: a save would lose them
    return model


def _layer(linear: nn.Linear, quantization: str) -> nn.Module:
    if quantization == "int8":
        return Float16Linear(linear)
    return BlockLinear(linear.weight, linear.bias)


def _refuse_to_save(*args, **kwargs) -> None:
    raise ValueError(
        "This model is quantized for decoding and cannot be saved; save the model loaded without quantization"
    )
