"""`theworld serve` under load: concurrent openai clients against the batching server and against
`--max-batch-size 1`, in one run.

    OMP_NUM_THREADS=1 python benchmarks/serve.py [--duration 20] [--clients 1 4 16 64] [--max-tokens 16]

For each server (the default batch size, then `--max-batch-size 1`) it starts `theworld serve` on a free loopback
port with the shipped model, warms it up with the largest load, then runs each client count for `--duration`
seconds: every client is a streaming chat completion loop (greedy, `--max-tokens` new tokens, usage included)
on one shared `AsyncOpenAI`. A row gives requests/s, p50 and p95 latency, p50 time to first token and errors;
requests still running at the deadline finish and count. The server's RSS (with any children) is read after
the warm-up and after the last load. The last lines check the targets: at 16 clients at least 4x the requests/s
of `--max-batch-size 1`, zero errors, and RSS after the run within 10% of RSS after the warm-up.
"""

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from openai import AsyncOpenAI

QUESTION = "where will the red ball be after two steps?"
TARGET_SPEEDUP, TARGET_CLIENTS, TARGET_RSS_GROWTH = 4.0, 16, 0.10


@dataclass
class Load:
    """One client count's measurements."""

    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def row(self, server: str) -> str:
        def ms(values: list[float], q: float) -> str:
            return f"{1000 * _quantile(values, q):8.0f}" if values else "       -"

        return (
            f"{server:>14} {self.clients:7d} {len(self.latencies):8d} {self.rate:7.2f} "
            f"{ms(self.latencies, 0.5)} {ms(self.latencies, 0.95)} {ms(self.first_tokens, 0.5)} {len(self.errors):6d}"
        )


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1] if len(values) > 1 else values[0]


def _load() -> str:
    """The machine's load average: other work on the same cores shows in every figure."""
    return "load average " + " ".join(f"{value:.1f}" for value in os.getloadavg())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


class Server:
    """`theworld serve` in a subprocess on a free loopback port; its log goes to a temporary file."""

    def __init__(self, extra_args: list[str], timeout: float) -> None:
        self.port = _free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="theworld-serve-", suffix=".log", delete=False)
        command = [sys.executable, "-m", "theworld.cli.main", "serve", "--port", str(self.port), *extra_args]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        self.base_url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        tail = Path(self.log.name).read_text(errors="replace")[-2000:]
        raise SystemExit(f"the server did not become healthy in {timeout:.0f}s; its log ends:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.unlink(self.log.name)


async def _client(client: AsyncOpenAI, model: str, max_tokens: int, deadline: float, load: Load) -> None:
    while time.perf_counter() < deadline:
        start, first = time.perf_counter(), None
        try:
            stream = await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": QUESTION}],
                max_tokens=max_tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - start
        except Exception as err:  # every failure is counted and shown, none stops the run
            load.errors.append(f"{type(err).__name__}: {err}".splitlines()[0])
            continue
        load.latencies.append(time.perf_counter() - start)
        if first is not None:
            load.first_tokens.append(first)


async def run_load(base_url: str, model: str, clients: int, duration: float, max_tokens: int) -> Load:
    load = Load(clients)
    async with AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=600) as client:
        start = time.perf_counter()
        tasks = [_client(client, model, max_tokens, start + duration, load) for _ in range(clients)]
        await asyncio.gather(*tasks)
        load.seconds = time.perf_counter() - start
    return load


def _chat_model(base_url: str) -> str:
    """The listed model that answers in text (the world model answers in video)."""
    models = httpx.get(f"{base_url}/v1/models", timeout=10).json()["data"]
    return next(m["id"] for m in models if "text" in m.get("output_modalities", ["text"]))


def measure(name: str, extra_args: list[str], args: argparse.Namespace) -> tuple[list[Load], float, float]:
    started = time.perf_counter()
    server = Server(extra_args, args.startup_timeout)
    print(f"{name}: healthy in {time.perf_counter() - started:.1f}s on {server.base_url}", flush=True)
    try:
        model = _chat_model(server.base_url)
        warm = asyncio.run(run_load(server.base_url, model, max(args.clients), args.warmup, args.max_tokens))
        if warm.errors:
            raise SystemExit(f"{name}: warm-up failed: {warm.errors[0]}")
        rss_warm = _rss_mb(server.process.pid)
        loads = []
        for clients in args.clients:
            loads.append(asyncio.run(run_load(server.base_url, model, clients, args.duration, args.max_tokens)))
            print(loads[-1].row(name), flush=True)
        return loads, rss_warm, _rss_mb(server.process.pid)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per client count")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of the largest load before measuring")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    args = parser.parse_args()

    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"OMP_NUM_THREADS={threads}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, {_load()}")
    header = ("server", "clients", "requests", "req/s", "p50 ms", "p95 ms", "ttft ms", "errors")
    widths = (14, 7, 8, 7, 8, 8, 8, 6)
    print(" ".join(f"{title:>{width}}" for title, width in zip(header, widths, strict=True)))
    results = {
        "batched": measure("batched", [], args),
        "batch size 1": measure("batch size 1", ["--max-batch-size", "1"], args),
    }
    print(f"\n{_load()} at the end")
    for text, ok in check_targets(results):
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


def check_targets(results: dict[str, tuple[list[Load], float, float]]) -> list[tuple[str, bool]]:
    """Print each server's RSS and first errors; return the targets as (what, met)."""
    checks = []
    for name, (loads, rss_warm, rss_after) in results.items():
        growth = rss_after / rss_warm - 1
        print(f"{name}: RSS {rss_warm:.0f} MB after warm-up, {rss_after:.0f} MB after the run ({growth:+.1%})")
        checks.append(
            (f"{name}: RSS after the run within {TARGET_RSS_GROWTH:.0%} of warm-up", abs(growth) <= TARGET_RSS_GROWTH)
        )
        for load in loads:
            for error in sorted(set(load.errors))[:3]:
                print(f"  {name}, {load.clients} clients: {error}")
    errors = sum(len(load.errors) for loads, *_ in results.values() for load in loads)
    checks.append((f"{errors} errors (target 0)", errors == 0))
    batched = {load.clients: load for load in results["batched"][0]}
    single = {load.clients: load for load in results["batch size 1"][0]}
    if TARGET_CLIENTS in batched:
        speedup = batched[TARGET_CLIENTS].rate / max(single[TARGET_CLIENTS].rate, 1e-9)
        what = f"{TARGET_CLIENTS} clients: {speedup:.1f}x the requests/s of batch size 1 (target {TARGET_SPEEDUP:.0f}x)"
        checks.append((what, speedup >= TARGET_SPEEDUP))
    return checks


if __name__ == "__main__":
    main()
