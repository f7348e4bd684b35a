"""A model of any size with random weights, built in seconds: the benchmarks' stand-in for a checkpoint that cannot
be downloaded (e.g. `config_from_name("gemma-3-4b")`).

Built on the meta device first (accelerate's `init_empty_weights`: no memory, no initialisation), then every weight
gets its own memory in the asked dtype, filled from one pool of normal values (std 0.02, transformers' Gemma
initialiser's). Drawing billions of normals is slow on a CPU; copying them from a pool runs at memory speed. The
values repeat with the pool's period, so a weight matrix is random but not i.i.d.: right
for timing, memory and shapes, which is what it is for; nothing it says is about answer quality.
"""

import torch
from accelerate import init_empty_weights
from torch import nn
from transformers import PreTrainedModel

__all__ = ["build_random", "materialise_random"]

POOL_SIZE = 1 << 24  # distinct values; an odd stride between weights keeps neighbours from starting alike
_STRIDE = 1_000_003


def build_random(
    model_class: type[PreTrainedModel],
    config,
    dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> PreTrainedModel:
    """`model_class(config)` in eval mode, on `device`, with random `dtype` weights (see the module)."""
    with init_empty_weights(include_buffers=False):  # buffers (RoPE frequencies, latent statistics) stay computed
        model = model_class(config)
    model.tie_weights()  # on the meta device, so that tied weights get one tensor
    materialise_random(model, dtype, device, seed)
    return model.eval()


def materialise_random(
    model: nn.Module, dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu", seed: int = 0
) -> None:
    """Give every meta parameter of `model` memory on `device`, filled with random `dtype` values; tied weights
    stay tied (one tensor), and buffers move to `device` with their own dtype."""
    generator = torch.Generator().manual_seed(seed)
    pool = (torch.randn(POOL_SIZE, generator=generator) * 0.02).to(device=device, dtype=dtype)
    fresh: dict[int, nn.Parameter] = {}
    start = 0
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            if id(param) not in fresh:
                weight = torch.empty(param.shape, dtype=dtype, device=device)
                _fill(weight.view(-1), pool, start)
                start = (start + _STRIDE) % POOL_SIZE
                fresh[id(param)] = nn.Parameter(weight, requires_grad=False)
            module._parameters[name] = fresh[id(param)]
        for name, buffer in list(module._buffers.items()):
            if buffer is not None:
                module._buffers[name] = buffer.to(device)


def _fill(flat: torch.Tensor, pool: torch.Tensor, start: int) -> None:
    """Copy `pool` into `flat` from position `start`, wrapping round, until `flat` is full."""
    done, size = 0, pool.numel()
    while done < flat.numel():
        begin = (start + done) % size
        count = min(flat.numel() - done, size - begin)
        flat[done : done + count].copy_(pool[begin : begin + count])
        done += count
