"""Decode speed of real Gemma 3 270M on CPU: transformers and TheWorld (fp32, bf16) against llama.cpp on the
same GGUF.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/real_gemma.py [--threads 1] [--new-tokens 64]

Every row times one `generate_fn(prompt_ids, steps) -> new_ids` (greedy): once for 1 token (the
prefill) and once for `--new-tokens`; decode speed is the difference. To add a row, append
`(name, generate_fn, weight_bytes)` to the list `rows()` returns.

"GB/s" is the weight bytes read per decoded token times tokens/s: every weight, the tied 262k x 640
embedding included (it is the output projection), is read once per token.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from theworld.modeling.gguf import convert_gguf_to_folder, resolve_gguf

GenerateFn = Callable[[list[int], int], list[int]]
PROMPT = "Question: What is the capital of France?\nAnswer:"


def time_decode(generate_fn: GenerateFn, prompt_ids: list[int], new_tokens: int) -> tuple[float, float, list[int]]:
    """(prefill seconds, decode tokens/s, generated ids), each the best of two runs after a warm-up."""
    generate_fn(prompt_ids, 2)
    best_prefill, best_total = float("inf"), float("inf")
    for _ in range(2):
        start = time.perf_counter()
        generate_fn(prompt_ids, 1)
        best_prefill = min(best_prefill, time.perf_counter() - start)
        start = time.perf_counter()
        ids = generate_fn(prompt_ids, new_tokens)
        best_total = min(best_total, time.perf_counter() - start)
    assert len(ids) == new_tokens, f"asked for {new_tokens} tokens, got {len(ids)}"
    return best_prefill, (new_tokens - 1) / (best_total - best_prefill), ids


def transformers_fn(folder, dtype: torch.dtype) -> tuple[GenerateFn, int]:
    from transformers import Gemma3ForCausalLM

    return _generate_fn(Gemma3ForCausalLM.from_pretrained(folder, dtype=dtype).eval())


def theworld_fn(folder, dtype: torch.dtype) -> tuple[GenerateFn, int]:
    """TheWorld wrapping the same weights (world off: a text prompt has no image to imagine from)."""
    from theworld import TheWorld

    return _generate_fn(TheWorld.from_pretrained(folder, enable_world=False, dtype=dtype))


def _generate_fn(model) -> tuple[GenerateFn, int]:

    def generate(ids: list[int], steps: int) -> list[int]:
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=steps,
                min_new_tokens=steps,
                do_sample=False,
                eos_token_id=None,
            )
        return out[0, len(ids) :].tolist()

    language = [p for name, p in model.named_parameters() if "vision" not in name]  # what decoding reads
    return generate, sum(p.numel() * p.element_size() for p in language)


def llama_cpp_fn(gguf_path, threads: int) -> tuple[GenerateFn, int]:
    from llama_cpp import Llama, llama_get_logits_ith

    llama = Llama(model_path=str(gguf_path), n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)

    def generate(ids: list[int], steps: int) -> list[int]:
        llama.reset()
        llama.eval(ids)
        out = []
        for _ in range(steps):
            logits = np.ctypeslib.as_array(llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),))
            out.append(int(np.argmax(logits)))
            if len(out) < steps:
                llama.eval(out[-1:])
        return out

    return generate, os.path.getsize(gguf_path)


def rows(gguf_path, folder, threads: int) -> list[tuple[str, GenerateFn, int]]:
    found = [
        ("transformers fp32", *transformers_fn(folder, torch.float32)),
        ("TheWorld fp32", *theworld_fn(folder, torch.float32)),
        ("transformers bf16", *transformers_fn(folder, torch.bfloat16)),
        ("TheWorld bf16", *theworld_fn(folder, torch.bfloat16)),
    ]
    try:
        found.append(("llama.cpp Q4_K_M", *llama_cpp_fn(gguf_path, threads)))
    except ImportError:
        print("llama.cpp row skipped: pip install llama-cpp-python")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--model", default="gemma-3-270m", help="a name resolve_gguf knows, or a .gguf path")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    gguf_path = resolve_gguf(args.model)
    folder = convert_gguf_to_folder(gguf_path)
    from transformers import AutoTokenizer

    prompt_ids = AutoTokenizer.from_pretrained(folder)(PROMPT).input_ids
    print(f"threads: torch {torch.get_num_threads()}, llama.cpp {args.threads}; torch {torch.__version__}")
    print(f"prompt: {len(prompt_ids)} tokens; {args.new_tokens} new tokens, greedy\n")

    results = []
    for name, generate_fn, weight_bytes in rows(gguf_path, folder, args.threads):
        prefill, tok_s, ids = time_decode(generate_fn, prompt_ids, args.new_tokens)
        results.append((name, prefill, tok_s, weight_bytes, ids))

    reference, first_ids = results[-1][2], results[0][4]
    print(f"{'':20} {'weights':>9} {'prefill':>9} {'decode':>11} {'GB/s':>6} {'vs last':>8}  same as row 1")
    for name, prefill, tok_s, weight_bytes, ids in results:
        same = next((i for i, (a, b) in enumerate(zip(ids, first_ids, strict=True)) if a != b), len(ids))
        print(
            f"{name:20} {weight_bytes / 2**20:6.0f}MiB {prefill * 1e3:7.0f}ms {tok_s:7.1f} tok/s "
            f"{weight_bytes * tok_s / 1e9:6.1f} {tok_s / reference:7.2f}x  first {same} tokens"
        )


if __name__ == "__main__":
    main()
