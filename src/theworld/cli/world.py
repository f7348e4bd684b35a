"""`theworld world`: Cosmos-style text2world / image2world / video2world from JSON or JSONL specs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["world"]


def world(
    inputs: Annotated[
        list[str] | None,
        typer.Option("-i", "--input", help="Spec JSON file(s) or quoted globs; more may follow as plain arguments."),
    ] = None,
    more_inputs: Annotated[
        list[str] | None, typer.Argument(metavar="[SPEC]...", help="More spec files, e.g. -i a.json b.json")
    ] = None,
    batch_input_path: Annotated[
        Path | None, typer.Option(help="Cosmos-Predict1 JSONL: one {visual_input, prompt} per line.")
    ] = None,
    output_dir: Annotated[Path, typer.Option("-o", "--output-dir", help="One folder per sample here.")] = Path(
        "outputs/world"
    ),
    model: Annotated[
        str, typer.Option(help="Backend name, diffusers Cosmos folder, or hub id (id or id@revision).")
    ] = "toyworld",
    inference_type: Annotated[
        str | None, typer.Option(help="text2world | image2world | video2world (default: from spec).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for every sample (default: the spec's, else 0).")] = None,
    num_input_frames: Annotated[
        int | None, typer.Option(help="Conditioning frames taken from the end of an input video.")
    ] = None,
    num_output_frames: Annotated[int | None, typer.Option(help="Frames to generate (Cosmos diffusion: 4k+1).")] = None,
    resolution: Annotated[str | None, typer.Option(help='"480", "720" or "HxW" (multiples of 16).')] = None,
    fps: Annotated[int | None, typer.Option(help="Frames per second of the written video.")] = None,
    num_steps: Annotated[int | None, typer.Option(help="Denoising steps (diffusion backends).")] = None,
    guidance: Annotated[float | None, typer.Option(help="Classifier-free guidance scale (diffusion backends).")] = None,
    top_p: Annotated[
        float | None, typer.Option(help="Nucleus sampling (autoregressive backends; alone, samples at temperature 1).")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature (autoregressive backends; default 0: greedy).")
    ] = None,
    offload_model: Annotated[
        bool, typer.Option(help="Keep the world model (transformer) on CPU between uses.")
    ] = False,
    offload_text_encoder: Annotated[bool, typer.Option(help="Keep the text encoder on CPU between uses.")] = False,
    offload_tokenizer: Annotated[
        bool, typer.Option(help="Keep the video tokenizer's encoder (VAE encoder) on CPU.")
    ] = False,
    offload_decoder: Annotated[
        bool, typer.Option(help="Keep the video tokenizer's decoder (VAE decoder) on CPU.")
    ] = False,
    offload_guardrail: Annotated[bool, typer.Option(help="Keep guardrail models on CPU between checks.")] = False,
    disable_guardrail: Annotated[bool, typer.Option(help="Skip the prompt and output safety checks.")] = False,
) -> None:
    """Generate worlds from Cosmos specs; under torchrun each rank takes every N-th sample."""
    from theworld.cli.outputs import check_output_folder
    from theworld.world.backends import OffloadOptions, get_backend
    from theworld.world.guardrail import load_guardrail
    from theworld.world.runner import (
        all_ranks,
        check_spec,
        finish_distributed,
        gather_results,
        init_distributed,
        run_world,
    )
    from theworld.world.spec import SpecError, WorldSpec, check_overrides, load_specs

    console = Console(stderr=True, highlight=False)
    info = init_distributed()
    lead = info.rank == 0
    tag = f"[rank {info.rank}] " if info.distributed else ""

    def say(line: str, everyone: bool = False) -> None:
        if lead or everyone:
            console.print(escape(tag + line), soft_wrap=True)

    start = time.perf_counter()
    try:
        overrides = check_overrides(
            dict(
                inference_type=inference_type,
                seed=seed,
                num_input_frames=num_input_frames,
                num_output_frames=num_output_frames,
                resolution=resolution,
                fps=fps,
                num_steps=num_steps,
                guidance=guidance,
                top_p=top_p,
                temperature=temperature,
            )
        )
        check_output_folder(output_dir, "-o")
    except ValueError as err:  # SpecError included
        say(f"error: {err}")
        raise typer.Exit(2) from None
    batch = load_specs([*(inputs or []), *(more_inputs or [])], str(batch_input_path) if batch_input_path else None)
    if not batch.specs and not batch.errors:
        say("error: no specs given; pass -i SPEC.json or --batch-input-path BATCH.jsonl")
        raise typer.Exit(2)

    def runnable(specs: list[WorldSpec], check: Callable[[WorldSpec], WorldSpec]) -> list[WorldSpec]:
        """What `check` makes of each spec; each one it refuses is a spec error, told now, before any sample."""
        kept = []
        for spec in specs:
            try:
                kept.append(check(spec))
            except SpecError as err:
                batch.errors.append(err)
                say(f"spec error: {err}")
        return kept

    for err in batch.errors:
        say(f"spec error: {err}")
    specs = runnable(batch.specs, lambda spec: spec.with_overrides(**overrides))

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the samples' own progress bars are the ones to show
    guardrail = load_guardrail(disabled=disable_guardrail, offload=offload_guardrail)
    offload = OffloadOptions(offload_model, offload_text_encoder, offload_tokenizer, offload_decoder, offload_guardrail)
    backend = None
    try:
        backend = get_backend(model, guardrail=guardrail, offload=offload) if specs else None
    except Exception as err:
        say(f"error: cannot load model {model!r}: {str(err).splitlines()[0]}", everyone=True)
    if specs and not all_ranks(backend is not None):  # no rank waits forever on one that gave up
        finish_distributed(info)
        raise typer.Exit(2)
    if backend is not None:
        specs = runnable(specs, lambda spec: check_spec(spec, backend))

    results = []
    if backend is not None:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not lead,
        ) as bar:
            mine = len(range(info.rank, len(specs), info.world_size))
            samples = bar.add_task("samples", total=mine)
            steps = bar.add_task("steps", total=None)

            def on_start(index: int, name: str) -> None:
                bar.update(steps, completed=0, total=None, description=escape(name))

            def on_result(result) -> None:
                bar.advance(samples)
                where = f" -> {result.output}" if result.output else f": {result.message}"
                bar.console.print(
                    escape(f"{tag}{result.status:7s} {result.name} ({result.seconds:.2f}s){where}"),
                    soft_wrap=True,
                )

            results = run_world(
                specs,
                backend,
                guardrail,
                output_dir,
                info,
                on_start=on_start,
                on_result=on_result,
                progress=lambda done, total: bar.update(steps, completed=done, total=total),
            )
    results = gather_results(results)
    counts = {status: sum(r.status == status for r in results) for status in ("ok", "blocked", "failed")}
    summary = (
        f"world: {counts['ok']} ok, {counts['blocked']} blocked, {counts['failed']} failed, "
        f"{len(batch.errors)} spec error(s) in {time.perf_counter() - start:.1f}s; outputs in {output_dir}"
    )
    say(summary)
    finish_distributed(info)
    if batch.errors:  # bad input, as for every command, though the good specs ran
        raise typer.Exit(2)
    if counts["failed"]:
        raise typer.Exit(1)
