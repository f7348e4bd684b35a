"""One matrix-vector product of decoding, by kernel: fp32, fbgemm int8 (what `int8` uses for the projection) and the
Q8_0 kernel (`q8_0`), at Gemma 3 270M's sizes, with this machine's memory bandwidth as the limit.

    OMP_NUM_THREADS=1 python benchmarks/q8_0_kernel.py [--runs 7]

The 262144 x 640 output projection is timed alone (it is larger than any cache); the 2048 x 640 layer as 60
different copies called in turn, as a decode step calls its layers, so that their weights come from memory.
"""

import argparse
import statistics
import time

import torch
from real_gemma import memory_bandwidth  # this folder is on the path when a benchmark runs as a script

from theworld.modeling.block_quantization import BlockLinear
from theworld.modeling.quantization import Int8Linear


class Float32Linear(torch.nn.Linear):
    @property
    def nbytes(self) -> int:
        return self.weight.nbytes


def build(kind: str, rows: int, cols: int = 640):
    weight = torch.randn(rows, cols)
    if kind == "fp32":
        layer = Float32Linear(cols, rows, bias=False)
        layer.weight.data = weight
        return layer
    return Int8Linear(weight) if kind == "fbgemm int8" else BlockLinear(weight)


def per_call(layers: list, runs: int) -> list[float]:
    x = torch.randn(1, layers[0].in_features)
    for layer in layers:
        layer(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for layer in layers:
            layer(x)
        times.append((time.perf_counter() - start) / len(layers))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; memory read bandwidth (1 GiB sum): {memory_bandwidth()[1]:.1f} GB/s")
    print(f"{'kernel':12} {'shape':>12} {'ms min / median / max':>24} {'GB/s (median)':>14}")
    with torch.inference_mode():
        for rows, copies in ((262144, 1), (2048, 60)):
            for kind in ("fp32", "fbgemm int8", "q8_0"):
                layers = [build(kind, rows) for _ in range(copies)]
                times = per_call(layers, args.runs)
                low, mid, high = (1e3 * t for t in (min(times), statistics.median(times), max(times)))
                rate = layers[0].nbytes / statistics.median(times) / 1e9
                print(f"{kind:12} {f'{rows} x 640':>12} {f'{low:.3f} / {mid:.3f} / {high:.3f}':>24} {rate:14.1f}")
                del layers


if __name__ == "__main__":
    main()
