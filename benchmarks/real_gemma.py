"""Decode speed and quality of real Gemma 3 270M on CPU: TheWorld (fp32, int8, q8_0) against llama.cpp on the same
GGUF, side by side in one run, with this machine's memory bandwidth as the physical limit.

    OMP_NUM_THREADS=1 python benchmarks/real_gemma.py [--threads 1] [--new-tokens 64] [--runs 3] [--compile] [--profile]

Speed: every row times one `generate_fn(prompt_ids, steps) -> new_ids` (greedy) on the first prompt, `--runs` times
after a warm-up, the rows taking turns: once for 1 token (the prefill) and once for `--new-tokens`; decode speed is
the difference. To add a row, append `(name, build)` to `rows()`, where `build()` returns `(generate_fn, bytes read per
token)`.

"GB/s" is the bytes each decoded token reads (every weight once; the embedding table only as the output projection,
since a lookup reads one row) times tokens/s, printed against this machine's single-thread memory bandwidth.

Quality, on all prompts: greedy `--new-tokens` outputs against TheWorld fp32's, and on each prompt followed by
fp32's own greedy continuation, the KL divergence of each row's next-token distribution from fp32's and the
positions where its top-1 differs.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from theworld.modeling.gguf import convert_gguf_to_folder, resolve_gguf

GenerateFn = Callable[[list[int], int], list[int]]
PROMPTS = [
    "Question: What is the capital of France?\nAnswer:",
    "The quick brown fox",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea,",
    "The three primary colors are",
    "1, 2, 3, 4, 5,",
    "Water boils at a temperature of",
]
LLAMA = "llama.cpp Q4_K_M"
QUANTIZED = ("int8", "q8_0")  # TheWorld's quantizations, each a row


@dataclass
class Checkpoint:
    gguf: str
    folder: str


@dataclass
class Quality:
    same_tokens: list[int]  # per prompt: how many greedy tokens agree with fp32's before the first difference
    top1_disagreements: int  # positions (over all prompts) whose top-1 differs from fp32's
    positions: int
    kl_mean: float  # KL(fp32 || row), nats per position
    kl_max: float


def load_checkpoint(name: str) -> Checkpoint:
    gguf = resolve_gguf(name)
    return Checkpoint(str(gguf), str(convert_gguf_to_folder(gguf)))


def memory_bandwidth(runs: int = 3) -> tuple[float, float]:
    """(copy, read) GB/s of one thread on a 1 GiB fp32 array: copy counts bytes read plus written."""
    source = torch.ones(2**28)
    target = torch.empty_like(source)
    copy = read = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        target.copy_(source)
        copy = min(copy, time.perf_counter() - start)
        start = time.perf_counter()
        source.sum()
        read = min(read, time.perf_counter() - start)
    return 2 * source.nbytes / copy / 1e9, source.nbytes / read / 1e9


def time_decode(generate_fn: GenerateFn, prompt_ids: list[int], new_tokens: int, runs: int):
    """(prefill seconds per run, decode tokens/s per run, generated ids), after a warm-up."""
    generate_fn(prompt_ids, 2)
    prefills, speeds = [], []
    for _ in range(runs):
        start = time.perf_counter()
        generate_fn(prompt_ids, 1)
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        ids = generate_fn(prompt_ids, new_tokens)
        total = time.perf_counter() - start
        prefills.append(prefill)
        speeds.append((new_tokens - 1) / (total - prefill))
    assert len(ids) == new_tokens, f"asked for {new_tokens} tokens, got {len(ids)}"
    return prefills, speeds, ids


def theworld_model(folder: str, quantization: str | None = None, compile: bool = False):
    """TheWorld wrapping the checkpoint's weights (world off: a text prompt has no image to imagine from)."""
    from theworld import TheWorld

    return TheWorld.from_pretrained(folder, enable_world=False, quantization=quantization, compile=compile).eval()


def decode_bytes(model) -> int:
    """Bytes one decoded token reads: the language model's weights, the output projection once (a tied embedding
    table is read as the projection; its lookup reads one row)."""
    head = model.get_output_embeddings()
    table = model.get_input_embeddings().weight
    modules = [model.get_decoder(), head]
    total = sum(getattr(m, "nbytes", 0) for root in modules for m in root.modules())
    seen = {id(table)}
    for root in modules:
        for p in root.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel() * p.element_size()
    return total if not isinstance(head, torch.nn.Linear) or head.weight is not table else total + table.nbytes


def torch_fn(model) -> tuple[GenerateFn, int]:
    def generate(ids: list[int], steps: int) -> list[int]:
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([ids]), max_new_tokens=steps, min_new_tokens=steps, do_sample=False, eos_token_id=None
            )
        return out[0, len(ids) :].tolist()

    return generate, decode_bytes(model)


def llama_cpp(gguf: str, threads: int, logits_all: bool = False):
    from llama_cpp import Llama

    return Llama(
        model_path=gguf,
        n_ctx=512,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=logits_all,
        verbose=False,
    )


def llama_cpp_fn(gguf: str, threads: int) -> tuple[GenerateFn, int]:
    from llama_cpp import llama_get_logits_ith

    llama = llama_cpp(gguf, threads)

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

    return generate, os.path.getsize(gguf)


def rows(checkpoint: Checkpoint, threads: int, compile: bool) -> list[tuple[str, Callable]]:
    from transformers import Gemma3ForCausalLM

    found = [
        ("transformers fp32", lambda: torch_fn(Gemma3ForCausalLM.from_pretrained(checkpoint.folder).eval())),
        ("TheWorld fp32", lambda: torch_fn(theworld_model(checkpoint.folder))),
        *[(f"TheWorld {q}", lambda q=q: torch_fn(theworld_model(checkpoint.folder, q))) for q in QUANTIZED],
    ]
    if compile:
        found.append(("TheWorld int8 compiled", lambda: torch_fn(theworld_model(checkpoint.folder, "int8", True))))
    found.append((LLAMA, lambda: llama_cpp_fn(checkpoint.gguf, threads)))
    return found


def quality_table(
    checkpoint: Checkpoint, new_tokens: int, threads: int = 1, quantizations: tuple[str, ...] = QUANTIZED
) -> dict[str, Quality]:
    """TheWorld's quantizations and llama.cpp against TheWorld fp32, on every prompt (see the module)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint.folder)
    prompts = [tokenizer(p).input_ids for p in PROMPTS]
    fp32 = theworld_model(checkpoint.folder)
    greedy = [torch_fn(fp32)[0](ids, new_tokens) for ids in prompts]
    sequences = [ids + out for ids, out in zip(prompts, greedy, strict=True)]
    reference = [_torch_log_probs(fp32, s) for s in sequences]
    del fp32
    gc.collect()

    table = {}
    for quantization in quantizations:
        model = theworld_model(checkpoint.folder, quantization)
        ours_generate = torch_fn(model)[0]
        table[f"TheWorld {quantization}"] = _quality(
            [ours_generate(ids, new_tokens) for ids in prompts],
            greedy,
            [_torch_log_probs(model, s) for s in sequences],
            reference,
        )
        del model
        gc.collect()
    llama_generate = llama_cpp_fn(checkpoint.gguf, threads)[0]
    llama = llama_cpp(checkpoint.gguf, threads, logits_all=True)
    table[LLAMA] = _quality(
        [llama_generate(ids, new_tokens) for ids in prompts],
        greedy,
        [_llama_log_probs(llama, s) for s in sequences],
        reference,
    )
    return table


def _torch_log_probs(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0].float().log_softmax(-1)


def _llama_log_probs(llama, ids: list[int]) -> torch.Tensor:
    llama.reset()
    llama.eval(ids)
    return torch.from_numpy(np.array(llama.scores[: len(ids)], dtype=np.float32)).log_softmax(-1)


def _quality(outputs, greedy, log_probs, reference) -> Quality:
    same = [
        next((i for i, (a, b) in enumerate(zip(o, g, strict=True)) if a != b), len(g))
        for o, g in zip(outputs, greedy, strict=True)
    ]
    kl = torch.cat([(r.exp() * (r - lp)).sum(-1) for lp, r in zip(log_probs, reference, strict=True)])
    disagree = sum(int((lp.argmax(-1) != r.argmax(-1)).sum()) for lp, r in zip(log_probs, reference, strict=True))
    return Quality(same, disagree, int(kl.numel()), float(kl.mean()), float(kl.max()))


def profile_decode(model, prompt_ids: list[int], steps: int = 16) -> dict[str, float]:
    """CPU milliseconds per decoded token: the output projection, the layers' kernel calls (each q8_0 layer's two,
    called in turn on one token, as a decode step calls them: its weights come from memory), and everything else
    (attention, the KV cache, the Python between calls: a decode step's CPU time less the two). CPU time, so that
    waiting for a busy CPU counts nowhere."""
    from theworld.modeling.block_quantization import attention_inputs

    head = model.get_output_embeddings()
    layers = list(model.get_decoder().layers)

    def cpu_ms(fn) -> float:
        fn()  # warm-up
        start = time.process_time()
        for _ in range(steps):
            fn()
        return (time.process_time() - start) * 1e3 / steps

    def decode_step() -> None:
        cache = copy.deepcopy(prefilled.past_key_values)
        model(token, past_key_values=cache, use_cache=True)

    def layer_kernels() -> None:
        for layer in layers:
            attention_inputs(layer.qkv_proj, layer.qk_norm, hidden, rotary)
            layer.tail(attended, hidden)

    with torch.inference_mode():
        prefilled = model(torch.tensor([prompt_ids]), use_cache=True)
        token = prefilled.logits[:, -1:].argmax(-1)
        cache_copy = cpu_ms(lambda: copy.deepcopy(prefilled.past_key_values))
        step = cpu_ms(decode_step) - cache_copy
        hidden, attended = torch.randn(1, 1, head.in_features), torch.randn(1, 1, layers[0].o_proj.in_features)
        rotary = (torch.randn(1, layers[0].head_dim), torch.randn(1, layers[0].head_dim))
        split = {
            "output projection": cpu_ms(lambda: head(hidden)),
            "layers' kernel calls": cpu_ms(layer_kernels),
        }
    split["everything else"] = step - sum(split.values())
    return {name: round(ms, 1) for name, ms in split.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="add a row with compile=True")
    parser.add_argument("--profile", action="store_true", help="split TheWorld q8_0's decode time by kind of op")
    parser.add_argument("--model", default="gemma-3-270m", help="a name resolve_gguf knows, or a .gguf path")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.model)
    from transformers import AutoTokenizer

    prompt_ids = AutoTokenizer.from_pretrained(checkpoint.folder)(PROMPTS[0]).input_ids
    print(f"threads: torch {torch.get_num_threads()}, llama.cpp {args.threads}; torch {torch.__version__}")
    print(f"prompt: {len(prompt_ids)} tokens; {args.new_tokens} new tokens, greedy; {args.runs} runs each\n")

    copy, read = memory_bandwidth()
    print(f"memory bandwidth, 1 thread, 1 GiB: copy {copy:.1f} GB/s (read + write), read {read:.1f} GB/s\n")
    print(f"{'':24} {'reads':>8} {'prefill':>8} {'decode tok/s min/med/max':>25} {'GB/s':>6} {'of read':>8}")
    built = [(name, *build()) for name, build in rows(checkpoint, args.threads, args.compile)]
    timings = {name: ([], []) for name, _, _ in built}
    for _ in range(args.runs):  # the rows take turns, so a drift of the machine's speed falls on all of them
        for name, generate_fn, _ in built:
            prefills, speeds, _ = time_decode(generate_fn, prompt_ids, args.new_tokens, 1)
            timings[name][0].extend(prefills)
            timings[name][1].extend(speeds)
    results = []
    for name, _, nbytes in built:
        prefills, speeds = timings[name]
        median = statistics.median(speeds)
        results.append((name, median, statistics.median(prefills)))
        print(
            f"{name:24} {nbytes / 2**20:5.0f}MiB {statistics.median(prefills) * 1e3:6.0f}ms "
            f"{min(speeds):8.1f} {median:7.1f} {max(speeds):7.1f}  {nbytes * median / 1e9:6.1f} "
            f"{nbytes * median / 1e9 / read:7.0%}",
            flush=True,
        )
    del built
    gc.collect()
    if args.profile:
        model = theworld_model(checkpoint.folder, "q8_0")
        split = profile_decode(model, prompt_ids)
        print(f"\nwhere TheWorld q8_0's decode time goes (ms per token, profiled): {split}")
        del model
    llama_speed, llama_prefill = results[-1][1], results[-1][2]
    print(f"\nagainst {LLAMA} (median): decode, prefill time")
    for name, speed, prefill in results[:-1]:
        print(f"  {name:24} {speed / llama_speed:5.2f}x  {prefill / llama_prefill:5.2f}x")

    print(f"\nquality against TheWorld fp32, {len(PROMPTS)} prompts, {args.new_tokens} greedy tokens each:")
    table = quality_table(checkpoint, args.new_tokens, args.threads)
    print(f"{'':20} {'same greedy tokens per prompt':>40} {'top-1 differs':>14} {'KL mean':>8} {'KL max':>7}")
    for name, q in table.items():
        same = " ".join(f"{n:2d}" for n in q.same_tokens)
        print(f"{name:20} {same:>40} {q.top1_disagreements:5d} of {q.positions:<5d} {q.kl_mean:8.4f} {q.kl_max:7.3f}")


if __name__ == "__main__":
    main()
