"""Data parallel training on the cores of one machine: a helper process joins this one in a gloo process group.

A 2-core machine runs the tiny model's training single-threaded in each process (PyTorch's own threads are far
slower on these small tensors), so the second core is only used if a second process takes half of each batch. The
data is split into a fixed number of shards, each with its own sampling seed; a process trains on the shards it
holds and the gradients are averaged over all of them. With two shards, one process holding both (gradient
accumulation) and two holding one each (all-reduce) make the same update to the bit (a + b = b + a; halving is
exact), so the checkpoint does not depend on how many jobs ran.

Why not `DistributedDataParallel`: with `world_dropout` the two halves of a batch may use different parameters
(a batch without world tokens leaves the projector out), which DDP handles only by probing for unused parameters
every step, and it has no single-process form that gives the same numbers. Averaging the gradients by hand is one
`all_reduce` of the flat gradients per step (and two tiny ones: which parameters were used, the loss).

Why not accelerate's `PartialState`: it joins a group torchrun's environment describes, once per process; here a
spawned helper meets this process through a file store, once per stage, and a helper that dies must be noticed.
"""

import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

__all__ = [
    "average_gradients",
    "data_parallel",
    "held_shards",
    "is_main_process",
    "log_tail",
    "shard_generator",
    "spawn_logged",
]

# Long enough for the helper to prepare its half of the data before the first all-reduce; a helper that dies is
# noticed at once (its socket closes), not after this.
TIMEOUT = timedelta(minutes=30)
READY = "helper ready"


def held_shards(count: int) -> range:
    """The shards of `count` this process trains on: all of them, or its rank's share in a process group."""
    if not dist.is_initialized():
        return range(count)
    return range(dist.get_rank(), count, dist.get_world_size())


def shard_generator(seed: int, shard: int) -> torch.Generator:
    """The sampling stream of one shard: the same whichever process holds it."""
    return torch.Generator().manual_seed(seed + 1_000_003 * shard)


def _run_logged(target: Callable, args: tuple, log_path: Path, threads: int) -> None:
    torch.set_num_threads(threads)
    log = open(log_path, "w")  # noqa: SIM115 - open for the life of this process
    os.dup2(log.fileno(), 1)  # its progress bars would garble the first process's on the same terminal
    os.dup2(log.fileno(), 2)
    target(*args)


def spawn_logged(target: Callable, args: tuple, log_path: Path) -> multiprocessing.Process:
    """Start `target(*args)` (a module-level function: it is pickled) in a second process with this one's thread
    count, its output in `log_path`. Spawned, a fresh interpreter (no forked torch thread pools), and daemonic, so
    that it dies with this process."""
    process = multiprocessing.get_context("spawn").Process(
        target=_run_logged, args=(target, args, log_path, torch.get_num_threads()), daemon=True
    )
    process.start()
    return process


def log_tail(log_path: Path) -> str:
    """The end of a second process's log, to show above the error that reports it failed."""
    return log_path.read_text(errors="replace")[-3000:] if log_path.is_file() else ""


def is_main_process() -> bool:
    """Rank 0, or no process group: the process that measures and saves."""
    return not dist.is_initialized() or dist.get_rank() == 0


def average_gradients(parameters: Sequence[torch.nn.Parameter], figure: float) -> float:
    """Sum `parameters`' gradients (already divided by the number of shards) and `figure` over the process group.
    A parameter no shard used keeps no gradient, as in one process (AdamW leaves a parameter whose gradient is
    None alone, but moves one whose gradient is zero by its momentum)."""
    if not dist.is_initialized():
        return figure
    used = torch.tensor([parameter.grad is not None for parameter in parameters], dtype=torch.float64)
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in parameters]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    dist.all_reduce(used)
    for parameter, summed, anywhere in zip(parameters, flat.split([g.numel() for g in grads]), used, strict=True):
        parameter.grad = summed.view_as(parameter) if anywhere else None
    summed_figure = torch.tensor([figure], dtype=torch.float64)
    dist.all_reduce(summed_figure)
    return summed_figure.item()


def _helper(work: Callable, args: tuple, folder: Path) -> None:
    """Rank 1: announce itself in the store rank 0 polls, join the group, run `work`."""
    store = dist.FileStore(str(folder / "rendezvous"), 2)
    store.set(READY, "1")
    dist.init_process_group("gloo", store=store, rank=1, world_size=2, timeout=TIMEOUT)
    try:
        work(*args)
    finally:
        dist.destroy_process_group()


def _failure(folder: Path) -> RuntimeError:
    return RuntimeError(
        f"{log_tail(folder / 'helper.log')}\nThe data-parallel helper process failed, above; run again with "
        "--jobs 1 to train in one"
    )


@contextmanager
def data_parallel(jobs: int, work: Callable, args: tuple) -> Iterator[None]:
    """With `jobs=2`, start a helper process that runs `work(*args)` (a module-level function: it is pickled into
    a fresh interpreter) as rank 1 of a gloo group, while the body runs as rank 0; with `jobs=1`, just the body.
    Rank 0 and the helper must run the same training steps. A failing helper raises here, with its log's tail."""
    if jobs < 2:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="theworld-data-parallel-") as name:
        folder = Path(name)
        helper = spawn_logged(_helper, (work, args, folder), folder / "helper.log")
        store = dist.FileStore(str(folder / "rendezvous"), 2)
        while not store.check([READY]):  # a helper that dies on its way up must not leave this one waiting
            if not helper.is_alive():
                raise _failure(folder)
            time.sleep(0.2)
        dist.init_process_group("gloo", store=store, rank=0, world_size=2, timeout=TIMEOUT)
        try:
            yield
        except Exception as error:
            helper.join(timeout=5)
            if helper.exitcode not in (None, 0):
                raise _failure(folder) from error
            raise
        finally:
            dist.destroy_process_group()
            helper.join(timeout=60)
            if helper.is_alive():
                helper.terminate()
                helper.join()
        if helper.exitcode != 0:
            raise _failure(folder)
