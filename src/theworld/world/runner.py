"""Run a batch of specs through a backend: one sample at a time, one folder per sample.

Under `torchrun --nproc_per_node=N` rank r takes samples r::N. Names and seeds depend only on the
sample's place in the whole batch, never on the rank, so N processes write what one would.

Two layouts: "cosmos" (Predict2.5's: `OUTDIR/<name>/<name>.mp4` with frames, GIF, spec and record) and
"predict1" (Predict1's: `OUTDIR/<name>.mp4`, next to `<name>.spec.json` and `<name>.record.json`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from theworld.media import write_mp4
from theworld.world.backends import ProgressFn, WorldBackend, WorldRequest
from theworld.world.guardrail import Guardrail
from theworld.world.io import read_input, unique_names, write_sample
from theworld.world.spec import ALLOWED_KEYS, SpecError, WorldSpec

__all__ = [
    "DistInfo",
    "SampleResult",
    "all_ranks",
    "check_spec",
    "finish_distributed",
    "gather_results",
    "init_distributed",
    "run_world",
]

logger = logging.getLogger(__name__)
DEFAULT_SEED = 0
LAYOUTS = ("cosmos", "predict1")


@dataclass
class SampleResult:
    index: int  # place in the whole batch
    name: str
    status: str  # "ok" | "blocked" | "failed"
    message: str = ""
    output: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the batch: rank `rank` of `world_size`."""

    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Join torchrun's process group through accelerate (nccl on GPU, gloo on CPU); a plain run is rank 0 of 1."""
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return DistInfo(state.process_index, state.num_processes)


def all_ranks(flag: bool) -> bool:
    """True when `flag` holds on every rank (the flag itself when not distributed)."""
    from accelerate.utils import gather_object

    return all(gather_object([flag]))


def gather_results(results: list[SampleResult]) -> list[SampleResult]:
    """Every rank's results, in batch order (the local ones when not distributed)."""
    from accelerate.utils import gather_object

    return sorted(gather_object(results), key=lambda r: r.index)


def finish_distributed(info: DistInfo) -> None:
    """Leave the process group cleanly: a rank that exits inside it aborts, and so can one that tears it down while
    another still talks to it, so every rank waits for the others first."""
    if info.distributed:
        from accelerate import PartialState

        state = PartialState()
        state.wait_for_everyone()
        state.destroy_process_group()


def _peak_memory_mb(device: str) -> dict[str, float]:
    # Linux reports ru_maxrss in KiB: the process's peak resident memory so far, not this sample's alone.
    peak = {"process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        peak["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def check_spec(spec: WorldSpec, backend: WorldBackend) -> WorldSpec:
    """The spec (with CLI overrides applied), or a SpecError when the backend cannot run it as its defaults fill
    it: checked for every spec before any sample runs."""
    if spec.inference_type not in backend.inference_types:
        raise SpecError(
            spec.source,
            f"backend {backend.name} cannot do {spec.inference_type}; use one of {list(backend.inference_types)}",
        )
    n_in, n_out = spec.num_input_frames, spec.num_output_frames or backend.default_num_output_frames
    if n_in is not None and n_in >= n_out:
        raise SpecError(
            spec.source,
            f"num_input_frames={n_in} must be below the {n_out} output frames of backend {backend.name}; "
            "lower it or raise num_output_frames",
        )
    return spec


def build_request(spec: WorldSpec, backend: WorldBackend, input_frames=None) -> WorldRequest:
    """Fill what the spec (with CLI overrides applied) leaves open from the backend's defaults."""
    check_spec(spec, backend)
    if spec.inference_type != "text2world" and input_frames is None:
        raise ValueError(f"{spec.inference_type} needs an input; set input_path in the spec")
    height, width = spec.resolution or backend.default_resolution
    return WorldRequest(
        inference_type=spec.inference_type,
        prompt=spec.prompt,
        negative_prompt=spec.negative_prompt,
        input_frames=input_frames if spec.inference_type != "text2world" else None,
        num_input_frames=spec.num_input_frames,
        num_output_frames=spec.num_output_frames or backend.default_num_output_frames,
        height=height,
        width=width,
        fps=spec.fps or backend.default_fps,
        seed=DEFAULT_SEED if spec.seed is None else spec.seed,
        guidance=spec.guidance,
        num_steps=spec.num_steps,
        top_p=spec.top_p,
        temperature=spec.temperature,
    )


def _resolved_spec(spec: WorldSpec, name: str, request: WorldRequest) -> dict[str, Any]:
    """The spec as Cosmos JSON with every default filled in: `-i spec.json` reproduces the sample."""
    values = {**spec.to_json(), "name": name}
    values.update({f.name: getattr(request, f.name) for f in dataclasses.fields(request) if f.name != "input_frames"})
    values["resolution"] = [request.height, request.width]
    return {k: values.get(k) for k in ALLOWED_KEYS}


def run_sample(
    spec: WorldSpec,
    name: str,
    index: int,
    backend: WorldBackend,
    guardrail: Guardrail,
    output_dir: Path,
    info: DistInfo = DistInfo(),
    progress: ProgressFn | None = None,
    layout: str = "cosmos",
) -> SampleResult:
    """Check, generate and write one sample; a problem becomes a failed/blocked result, not an exception."""
    start = time.perf_counter()
    result = SampleResult(index=index, name=name, status="failed")
    try:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        reason = guardrail.blocked_reason(spec.prompt)
        timings["guardrail_text_s"] = time.perf_counter() - t
        if reason:
            result.status, result.message = "blocked", f"prompt blocked by guardrail ({reason})"
            return result
        t = time.perf_counter()
        frames_in = None
        if spec.inference_type != "text2world":
            # No backend reads more than the output's length of input frames: a long clip keeps only those.
            keep = spec.num_input_frames or spec.num_output_frames or backend.default_num_output_frames
            frames_in = read_input(spec.input_path, max_frames=keep)
        timings["read_input_s"] = time.perf_counter() - t
        request = build_request(spec, backend, frames_in)
        device = str(getattr(backend, "device", "cpu"))
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        frames = backend.generate(request, progress)
        timings["generate_s"] = time.perf_counter() - t
        t = time.perf_counter()
        frames = guardrail.check_video_safety(frames)
        timings["guardrail_video_s"] = time.perf_counter() - t
        if frames is None:
            result.status, result.message = "blocked", "output blocked by guardrail (video check)"
            return result
        record = {
            "name": name,
            "index": index,
            "seed": request.seed,
            "inference_type": request.inference_type,
            "backend": backend.name,
            "guardrail": guardrail.name,
            "frames": list(frames.shape),
            "fps": request.fps,
            "device": device,
            "rank": info.rank,
            "world_size": info.world_size,
            "torch_threads": torch.get_num_threads(),
            "timings": {**timings, "total_before_write_s": time.perf_counter() - start},
            "peak_memory": _peak_memory_mb(device),
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
        }
        spec_json = _resolved_spec(spec, name, request)
        if layout == "predict1":
            out = _write_predict1(output_dir, name, frames, request.fps, spec_json, record)
        else:
            out = write_sample(output_dir, name, frames, request.fps, spec_json, record)
        result.status, result.output = "ok", str(out)
    except Exception as err:  # a bad sample must not stop the batch
        logger.debug("sample %s failed", name, exc_info=True)
        result.message = f"{type(err).__name__}: {err}".splitlines()[0]
    finally:
        result.seconds = time.perf_counter() - start
    return result


def run_world(
    specs: list[WorldSpec],
    backend: WorldBackend,
    guardrail: Guardrail,
    output_dir: str | Path,
    info: DistInfo = DistInfo(),
    on_start: Callable[[int, str], None] | None = None,
    on_result: Callable[[SampleResult], None] | None = None,
    progress: ProgressFn | None = None,
    layout: str = "cosmos",
) -> list[SampleResult]:
    """Run this rank's share (`specs[rank::world_size]`) and return its results, written in `layout`."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {LAYOUTS}")
    names = unique_names([s.name for s in specs])
    results = []
    for index in range(info.rank, len(specs), info.world_size):
        if on_start:
            on_start(index, names[index])
        result = run_sample(
            specs[index], names[index], index, backend, guardrail, Path(output_dir), info, progress, layout
        )
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _write_predict1(output_dir: Path, name: str, frames, fps: int, spec: dict, record: dict) -> Path:
    """Predict1's layout: `<name>.mp4` in `output_dir`, each file written beside its place and renamed into it,
    so an interrupted sample leaves no half-written video."""
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{name}.mp4"
    for suffix, write in (
        (".spec.json", lambda path: path.write_text(json.dumps(spec, indent=2, default=str) + "\n")),
        (".record.json", lambda path: path.write_text(json.dumps(record, indent=2, default=str) + "\n")),
        (".mp4", lambda path: write_mp4(path, frames, fps)),
    ):
        partial = output_dir / f".{name}{suffix}.partial{suffix if suffix == '.mp4' else ''}"
        write(partial)
        os.replace(partial, output_dir / f"{name}{suffix}")
    return target
