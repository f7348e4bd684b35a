"""The Q8_0 kernel behind `quantization="q8_0"`: GGUF's own blocks, and products equal to the blocks' arithmetic.

benchmarks/real_gemma.py measures its speed against llama.cpp (docs/real-gemma.md); tests/test_fast_decode.py
checks the models it makes.
"""

import numpy as np
import pytest
import torch

from theworld.modeling import block_quantization
from theworld.modeling.block_quantization import BLOCK, BlockLinear, dequantize_q8_0, quantize_q8_0
from theworld.modeling.quantization import check_quantization

pytestmark = pytest.mark.skipif(
    block_quantization.block_kernel_problem() is not None, reason="the q8_0 kernel needs AVX2 and a C compiler"
)


def _reference(x: torch.Tensor, values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """What the kernel computes, in float64: activations rounded to 16 bits with a scale per 32, times the blocks."""
    blocks = x.double().reshape(*x.shape[:-1], -1, BLOCK)
    step = blocks.abs().amax(-1, keepdim=True) / 32767
    rounded = torch.where(step > 0, torch.round(blocks / step) * step, 0.0).reshape(x.shape)
    return rounded @ dequantize_q8_0(values, scales).double().T


def test_blocks_are_ggufs_q8_0_byte_for_byte():
    """The same int8 values and fp16 scales as gguf's reference quantizer, and its dequantized values come back
    exactly (a Q8_0 tensor of a GGUF file loses nothing more here)."""
    gguf = pytest.importorskip("gguf", reason="pip install gguf")
    weight = np.random.default_rng(0).standard_normal((16, 4 * BLOCK)).astype(np.float32) * 0.05
    packed = gguf.quants.quantize(weight, gguf.GGMLQuantizationType.Q8_0).reshape(16, 4, 2 + BLOCK)
    values, scales = quantize_q8_0(torch.from_numpy(weight))
    assert np.array_equal(values.numpy(), packed[..., 2:].view(np.int8).reshape(16, -1))
    assert np.array_equal(scales.numpy(), packed[..., :2].copy().view(np.float16)[..., 0])
    from_file = torch.from_numpy(gguf.quants.dequantize(packed.reshape(16, -1), gguf.GGMLQuantizationType.Q8_0))
    assert torch.equal(dequantize_q8_0(*quantize_q8_0(from_file)), from_file)


def test_ggufs_4_and_5_bit_blocks_come_back_exactly():
    """A GGUF's Q4_0 and Q5_0 layers, dequantized into a checkpoint folder, lose nothing more in Q8_0: each block's
    grid becomes its scale. Weights on no grid are rounded as gguf's Q8_0 rounds them (the test above)."""
    gguf = pytest.importorskip("gguf", reason="pip install gguf")
    weight = np.random.default_rng(1).standard_normal((64, 8 * BLOCK)).astype(np.float32) * 0.05
    for kind in (gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q5_0):
        from_file = torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(weight, kind), kind))
        assert torch.equal(dequantize_q8_0(*quantize_q8_0(from_file)), from_file)
    rounded = torch.from_numpy(weight)
    assert not torch.equal(dequantize_q8_0(*quantize_q8_0(rounded)), rounded)


@pytest.mark.parametrize("tokens", [1, 3, 37])
@pytest.mark.parametrize(("rows", "cols"), [(1, 32), (130, 64), (257, 640)])
def test_products_equal_the_blocks_arithmetic(tokens, rows, cols):
    generator = torch.Generator().manual_seed(rows + cols + tokens)
    weight = torch.randn(rows, cols, generator=generator)
    x = torch.randn(2, tokens, cols, generator=generator) * 3
    x[0, 0, :BLOCK] = 0.0  # an all-zero block of activations
    layer = BlockLinear(weight)
    out = layer(x)
    assert out.shape == (2, tokens, rows) and out.dtype == torch.float32
    expected = _reference(x, layer.values, layer.scales)
    assert torch.allclose(out.double(), expected, rtol=1e-5, atol=1e-4 * expected.abs().max())
    exact = x @ weight.T  # and it is still x @ W.T, to Q8_0's precision
    assert torch.linalg.norm(out - exact) < 0.2 * torch.linalg.norm(exact)


def test_bias_threads_and_layout():
    generator = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(100, 96, generator=generator), torch.randn(100, generator=generator)
    x = torch.randn(5, 2 * 96, generator=generator)[:, ::2]  # not contiguous
    layer = BlockLinear(weight, bias)
    one = layer(x)
    assert torch.allclose(one, BlockLinear(weight)(x.contiguous()) + bias)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # rows split between threads: 100 rows do not divide evenly
        assert torch.equal(layer(x), one)
    finally:
        torch.set_num_threads(threads)
    assert layer(x.double()).dtype == torch.float64


def test_bad_settings_are_refused_in_one_line(monkeypatch):
    with pytest.raises(ValueError, match="multiple of 32, got 40"):
        BlockLinear(torch.randn(8, 40))
    monkeypatch.setenv("CC", "no-such-compiler")
    with pytest.raises(ValueError, match="no C compiler.*quantization='int8' instead"):
        check_quantization("q8_0")


def _small_gemma(activation: str = "gelu_pytorch_tanh"):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        sliding_window=6,
        layer_types=["sliding_attention", "full_attention"],
        hidden_activation=activation,
    )
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():  # norms away from their zero init, so that a misplaced scale shows
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.normal_(0.0, 0.5)
    return model


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float(torch.linalg.norm(ours - reference) / torch.linalg.norm(reference))


def _with_block_projections(model):
    """transformers' own layers, each projection replaced by the same Q8_0 projection `quantize` makes."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, BlockLinear(child.weight, child.bias))
    return model


@pytest.mark.parametrize("activation", ["gelu_pytorch_tanh", "silu"])
def test_q8_0_gemma_layers_compute_transformers_layers(activation):
    """The fused q8_0 layers (q, k, v and gate, up in one projection each; query and key norms and rotary together;
    with Gemma's GELU, all after the attention in one call too) give the logits of transformers' own layers with the
    same Q8_0 projections: a whole prompt, and token by token through the KV cache past the sliding window. And
    those stay within Q8_0's precision of fp32."""
    from transformers import DynamicCache

    from theworld.modeling.fused_layers import FusedGemma3DecoderLayer
    from theworld.modeling.quantization import quantize

    ids = torch.randint(0, 96, (2, 14), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fp32 = _small_gemma(activation)(ids).logits
        expected = _with_block_projections(_small_gemma(activation))(ids).logits
        model = quantize(_small_gemma(activation), "q8_0")
        assert all(isinstance(layer, FusedGemma3DecoderLayer) for layer in model.model.layers)
        assert all((layer.tail is not None) == (activation == "gelu_pytorch_tanh") for layer in model.model.layers)
        whole = model(ids).logits
        cache = DynamicCache(config=model.config)
        steps = [model(ids[:, :8], past_key_values=cache, use_cache=True).logits]
        for position in range(8, 14):
            steps.append(model(ids[:, position : position + 1], past_key_values=cache, use_cache=True).logits)
    # Within the 16-bit rounding of the activations, which the fused calls' own float arithmetic can move by a step
    assert _relative_error(whole, expected) < 1e-4
    assert _relative_error(torch.cat(steps, dim=1), expected) < 1e-4
    assert _relative_error(expected, fp32) < 0.05
