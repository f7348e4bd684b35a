"""Linear layers in GGUF's Q8_0 blocks and Gemma's RMSNorm, computed by small AVX2 kernels (`kernels/q8_0_decode.c`).

`quantize(model, "q8_0")` uses them (`theworld.modeling.quantization`). A block is 32 weights of one row, int8,
with one fp16 scale: 8.5 bits a weight. The activations are rounded to 16 bits in blocks of 32 (llama.cpp rounds
them to 8): a scale per 32 values follows Gemma's activation outliers, which one scale per row (fbgemm's int8)
cannot, and 16 bits cost the kernel no more than 8.

The kernel is C, compiled on first use with the system's C compiler into the cache folder (`$THEWORLD_CACHE`), as
inductor and Triton compile theirs: no library installable here has a block-quantized kernel that reads its
weights at memory speed on an AVX2 CPU (docs/real-gemma.md measures torch's and torchao's int8/int4 kernels).
"""

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import torch
from torch import nn

from theworld.modeling.gguf import cache_dir

__all__ = [
    "BLOCK",
    "BlockLinear",
    "KernelRMSNorm",
    "LayerTail",
    "attention_inputs",
    "block_kernel",
    "block_kernel_problem",
    "check_block_kernel",
    "dequantize_q8_0",
    "quantize_q8_0",
]

BLOCK = 32
_WEIGHTS_AT_A_TIME = 2**24  # bounds quantize_q8_0's temporaries (a 262k-row embedding is far larger)
# -fopenmp: the rows split across torch's thread count; one thread runs no parallel region.
_FLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp", "-shared", "-fPIC"]


class _BlockWeights(ctypes.Structure):
    """The kernel's `struct block_weights`: where one layer's blocks are."""

    _fields_ = [
        ("rows", ctypes.c_int64),
        ("cols", ctypes.c_int64),
        ("values", ctypes.c_void_p),
        ("scales", ctypes.c_void_p),
        ("norm_scale", ctypes.c_void_p),
        ("norm_eps", ctypes.c_float),
        ("gated", ctypes.c_int64),
    ]


class _LayerTail(ctypes.Structure):
    """The kernel's `struct layer_tail`: what follows a decoder layer's attention."""

    _fields_ = [
        ("o", ctypes.c_void_p),
        ("gate_up", ctypes.c_void_p),
        ("down", ctypes.c_void_p),
        ("post_attention_scale", ctypes.c_void_p),
        ("post_feedforward_scale", ctypes.c_void_p),
        ("post_attention_eps", ctypes.c_float),
        ("post_feedforward_eps", ctypes.c_float),
    ]


def check_block_kernel() -> None:
    """Refuse `q8_0` in one line where its kernel cannot run, before any weight loads or compiles."""
    problem = block_kernel_problem()
    if problem is not None:
        raise ValueError(f"quantization='q8_0' cannot run here: {problem}; use quantization='int8' instead")


def block_kernel_problem() -> str | None:
    """Why the kernel cannot run here (no AVX2, no C compiler), or None when it can."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    if not {"avx2", "fma", "f16c"} <= flags:
        return "it needs an x86 CPU with AVX2 under Linux"
    if shutil.which(os.environ.get("CC", "cc")) is None:
        return "it is compiled on first use and no C compiler was found (install gcc, or set CC)"
    return None


@lru_cache(maxsize=1)
def block_kernel() -> ctypes.CDLL:
    """The compiled kernel, built once per source version into the cache folder."""
    check_block_kernel()
    source = files("theworld.modeling").joinpath("kernels", "q8_0_decode.c").read_bytes()
    digest = hashlib.sha256(source + " ".join(_FLAGS).encode()).hexdigest()[:16]
    folder = cache_dir() / "kernels"
    library = folder / f"q8_0_decode-{digest}.so"
    if not library.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            (Path(scratch) / "q8_0_decode.c").write_bytes(source)
            command = [os.environ.get("CC", "cc"), *_FLAGS, "q8_0_decode.c", "-o", library.name, "-lm"]
            result = subprocess.run(command, cwd=scratch, capture_output=True, text=True)
            if result.returncode != 0:
                raise ValueError(
                    f"quantization='q8_0' cannot run here: compiling its kernel failed ({result.stderr.strip()[:300]});"
                    " use quantization='int8' instead"
                )
            os.replace(Path(scratch) / library.name, library)  # atomic: another process sees all of it or none
    kernel = ctypes.CDLL(str(library))
    kernel.block_linear.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
    kernel.block_linear.restype = ctypes.c_int
    kernel.rms_norm.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
    kernel.rms_norm.argtypes += [ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_void_p]
    kernel.rms_norm.restype = None
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    kernel.attention_inputs.argtypes = [pointer, pointer, size, pointer, size, size, ctypes.c_float, pointer, pointer]
    kernel.attention_inputs.argtypes += [pointer, size]
    kernel.attention_inputs.restype = ctypes.c_int
    kernel.attention_outputs.argtypes = [pointer, pointer, pointer, size, pointer, size]
    kernel.attention_outputs.restype = ctypes.c_int
    return kernel


def quantize_q8_0(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) weights -> int8 values (rows, cols) and fp16 scales (rows, cols / 32), a scale max|w| / 127 per
    block of 32 (GGUF's Q8_0: weights read from a Q8_0 tensor come back exactly). A block that this would round
    but whose fp32 weights are whole multiples (at most 127) of an fp16 step keeps that step as its scale and comes
    back exactly: the blocks of GGUF's Q4_0 and Q5_0 tensors, dequantized."""
    values, scales = [], []
    dequantized = weight.dtype == torch.float32  # a GGUF's blocks come in fp32; bf16 weights skip the search
    for rows in weight.detach().split(max(1, _WEIGHTS_AT_A_TIME // weight.shape[1])):
        rows = rows.float()
        blocks = rows.reshape(-1, BLOCK)
        scale = blocks.abs().amax(-1) / 127
        scaled = blocks * torch.where(scale > 0, 1 / scale, 0.0)[:, None]
        value = (scaled.sign() * (scaled.abs() + 0.5).floor()).clamp(-127, 127)  # halves away from 0
        scale = scale.half()
        if dequantized:
            rounded = (value * scale.float()[:, None] != blocks).any(-1).nonzero().flatten()
            on_grid, multiples, steps = _on_grid(blocks[rounded])
            value[rounded[on_grid]], scale[rounded[on_grid]] = multiples, steps
        values.append(value.to(torch.int8).reshape(rows.shape))
        scales.append(scale.reshape(rows.shape[0], -1))
    return torch.cat(values).contiguous(), torch.cat(scales).contiguous()


def _on_grid(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which of `blocks` (n, 32) are whole multiples, at most 127, of an fp16 step: their smallest nonzero |w| or a
    half to a quarter of it (the grid of a dequantized Q4_0/Q5_0 block). (indices, their multiples, their steps);
    four weights of each block are tried first, so that blocks off any grid cost little."""
    smallest = torch.where(blocks != 0, blocks.abs(), torch.inf).amin(-1)
    found = torch.zeros(len(blocks), dtype=torch.bool)
    multiples, steps = torch.empty(0, BLOCK), torch.empty(0, dtype=torch.float16)
    indices = []
    for divisor in range(1, 5):
        step = (smallest / divisor).half()
        probe = blocks[:, :4] / step.float()[:, None]
        candidates = ((probe == probe.round()).all(-1) & ~found).nonzero().flatten()
        ratio = blocks[candidates] / step[candidates].float()[:, None]
        whole = ratio.round()
        fits = (ratio == whole).all(-1) & (whole.abs().amax(-1) <= 127)
        fits &= (whole * step[candidates].float()[:, None] == blocks[candidates]).all(-1)
        found[candidates[fits]] = True
        indices.append(candidates[fits])
        multiples, steps = torch.cat([multiples, whole[fits]]), torch.cat([steps, step[candidates[fits]]])
    return torch.cat(indices), multiples, steps


def dequantize_q8_0(values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The fp32 weights that Q8_0 blocks hold."""
    return (values.float().reshape(*scales.shape, BLOCK) * scales.float()[..., None]).reshape(values.shape)


def _float_rows(x: torch.Tensor, width: int) -> torch.Tensor:
    """x as contiguous fp32 rows of `width` values, what the kernel reads (a view when it already is)."""
    rows = x.reshape(-1, width)
    return rows if rows.dtype == torch.float32 and rows.is_contiguous() else rows.float().contiguous()


class BlockLinear(nn.Module):
    """`x @ weight.T (+ bias)` with the weights in Q8_0 blocks and the activations rounded to 16 bits in blocks; with
    `norm`, `norm(x) @ weight.T (+ bias)`, the RMSNorm before the projection computed in the same call; `gated`, x is
    [gate | up] and the layer computes `(gelu_tanh(gate) * up) @ weight.T`, Gemma's MLP product in the same call."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        norm: "KernelRMSNorm | None" = None,
        gated: bool = False,
    ):
        super().__init__()
        if weight.shape[1] % BLOCK:
            raise ValueError(f"q8_0 needs layers whose input size is a multiple of {BLOCK}, got {weight.shape[1]}")
        self.out_features, self.in_features = weight.shape
        # Plain tensors, not buffers: a quantized model is for inference and is never saved or moved.
        self.values, self.scales = quantize_q8_0(weight)
        self.bias = None if bias is None else bias.detach().float().contiguous()
        self.nbytes = self.values.nbytes + self.scales.nbytes  # what one call reads
        if norm is not None and norm.scale.shape != (1, self.in_features):
            raise ValueError(
                f"a norm before this projection must normalise {self.in_features} values, not {norm.width}"
            )
        if norm is not None and gated:
            raise ValueError("a projection either normalises its input or gates it, not both")
        self.norm, self.gated = norm, gated
        self._weights = _BlockWeights(
            self.out_features,
            self.in_features,
            self.values.data_ptr(),
            self.scales.data_ptr(),
            None if norm is None else norm.scale.data_ptr(),
            0.0 if norm is None else norm.eps,
            int(gated),
        )
        # One ctypes call a forward, its arguments ready: Python's cost per call is a visible share of a decode step.
        self._weights_address = ctypes.addressof(self._weights)
        self._block_linear = block_kernel().block_linear

    @property
    def input_size(self) -> int:
        """The last dimension `forward` takes: in_features, or twice that when gated ([gate | up])."""
        return 2 * self.in_features if self.gated else self.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = _float_rows(x, self.input_size)
        out = torch.empty(rows.shape[0], self.out_features)
        tokens, threads = rows.shape[0], torch.get_num_threads()
        if self._block_linear(self._weights_address, rows.data_ptr(), tokens, out.data_ptr(), threads):
            raise MemoryError(f"no memory for the rounded activations of {tokens} tokens")
        if self.bias is not None:
            out += self.bias
        return out.view(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, q8_0"


class KernelRMSNorm(nn.Module):
    """Gemma's RMSNorm in one kernel call, `x / sqrt(mean(x^2) + eps) * scale` with `scale` (groups, size) = 1 + the
    norms' weights: the first groups * size values of each input row, as `groups` vectors, vector g scaled by row g
    (one norm: groups = 1; the query and key norms of a fused projection's heads: a row per head)."""

    def __init__(self, scale: torch.Tensor, eps: float):
        super().__init__()
        self.scale = scale.detach().float().reshape(-1, scale.shape[-1]).contiguous()
        self.eps = float(eps)
        self.width = self.scale.numel()
        self._rms_norm = block_kernel().rms_norm

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """The norm of x's rows; with `residual` (the output's shape), residual + the norm, in the same call."""
        rows = _float_rows(x, x.shape[-1])
        out = torch.empty(rows.shape[0], self.width)
        added = None if residual is None else _float_rows(residual, self.width)  # held until the call returns
        (tokens, stride), (groups, size) = rows.shape, self.scale.shape
        added_at = None if added is None else added.data_ptr()
        self._rms_norm(
            rows.data_ptr(), tokens, stride, self.scale.data_ptr(), groups, size, self.eps, added_at, out.data_ptr()
        )
        return out.view(*x.shape[:-1], self.width).to(x.dtype)


def attention_inputs(
    projection: BlockLinear, head_norm: KernelRMSNorm, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """A decoder layer's q|k|v in one kernel call: `projection(x)` (its input norm inside), then its first
    `head_norm.scale.shape[0]` head vectors (the query and key heads) normalised by `head_norm` and rotated by
    `rotary` (cos, sin), a row per token; the value heads as projected."""
    groups, head_dim = head_norm.scale.shape
    rows = _float_rows(x, projection.in_features)
    cos, sin = (_float_rows(t, head_dim) for t in rotary)
    out = torch.empty(rows.shape[0], projection.out_features)
    failed = block_kernel().attention_inputs(
        projection._weights_address,
        rows.data_ptr(),
        rows.shape[0],
        head_norm.scale.data_ptr(),
        groups,
        head_dim,
        head_norm.eps,
        cos.data_ptr(),
        sin.data_ptr(),
        out.data_ptr(),
        torch.get_num_threads(),
    )
    if failed:
        raise MemoryError(f"no memory for the attention inputs of {rows.shape[0]} tokens")
    return out.view(*x.shape[:-1], projection.out_features).to(x.dtype)


class LayerTail:
    """What follows a Gemma decoder layer's attention, in one kernel call: `h = residual +
    post_attention_norm(o_proj(attended))`, then `h + post_feedforward_norm(down_proj(gate_up_proj(h)))`, with the
    pre-feedforward norm inside `gate_up_proj` and GELU(gate) * up inside `down_proj` (gated). Five calls and the
    tensors between them cost a decode step more than the arithmetic."""

    def __init__(
        self,
        o_proj: BlockLinear,
        post_attention_norm: KernelRMSNorm,
        gate_up_proj: BlockLinear,
        down_proj: BlockLinear,
        post_feedforward_norm: KernelRMSNorm,
    ):
        hidden = o_proj.out_features
        if gate_up_proj.norm is None or not down_proj.gated:
            raise ValueError("a layer tail needs the pre-feedforward norm in gate_up_proj and a gated down_proj")
        if {post_attention_norm.width, post_feedforward_norm.width, gate_up_proj.in_features} != {hidden}:
            raise ValueError(f"a layer tail's norms and MLP must all take the hidden size {hidden}")
        self.hidden, self.attended = hidden, o_proj.in_features
        self._parts = (o_proj, post_attention_norm, gate_up_proj, down_proj, post_feedforward_norm)  # kept alive
        self._tail = _LayerTail(
            o_proj._weights_address,
            gate_up_proj._weights_address,
            down_proj._weights_address,
            post_attention_norm.scale.data_ptr(),
            post_feedforward_norm.scale.data_ptr(),
            post_attention_norm.eps,
            post_feedforward_norm.eps,
        )
        self._tail_address = ctypes.addressof(self._tail)
        self._attention_outputs = block_kernel().attention_outputs

    def __call__(self, attended: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        rows, before = _float_rows(attended, self.attended), _float_rows(residual, self.hidden)
        out = torch.empty(rows.shape[0], self.hidden)
        tokens, threads = rows.shape[0], torch.get_num_threads()
        pointers = (rows.data_ptr(), before.data_ptr(), tokens, out.data_ptr())
        if self._attention_outputs(self._tail_address, *pointers, threads):
            raise MemoryError(f"no memory for the MLP activations of {tokens} tokens")
        return out.view(residual.shape).to(residual.dtype)
