"""`theworld world`: Cosmos-style text2world / image2world / video2world from JSON or JSONL specs.

It also takes Cosmos-Predict1's spellings (`--checkpoint_dir`, `--ar_model_dir`, `--input_type`,
`--input_image_or_video_path`, `--video_save_name`, `--video_save_folder`, `--batch_input_path`, `--num_gpus`, the
`--offload_*` flags...), with Predict1's meanings; any of its own names switches the outputs to Predict1's layout:
`<video_save_folder>/<video_save_name>.mp4`, or `<video_save_folder>/<i>.mp4` for the i-th line of a batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["world"]

# Predict1's --input_type values -> this command's inference types
PREDICT1_INPUT_TYPES = {
    "image": "image2world",
    "text_and_image": "image2world",
    "video": "video2world",
    "text_and_video": "video2world",
}
PREDICT1_FOLDER = Path("outputs")  # Predict1's --video_save_folder default
PREDICT1_NAME = "output"  # Predict1's --video_save_name default


def world(
    inputs: Annotated[
        list[str] | None,
        typer.Option("-i", "--input", help="Spec JSON file(s) or quoted globs; more may follow as plain arguments."),
    ] = None,
    more_inputs: Annotated[
        list[str] | None, typer.Argument(metavar="[SPEC]...", help="More spec files, e.g. -i a.json b.json")
    ] = None,
    batch_input_path: Annotated[
        Path | None,
        typer.Option(
            "--batch-input-path",
            "--batch_input_path",
            help="Cosmos-Predict1 JSONL: one {visual_input, prompt} per line.",
        ),
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("-o", "--output-dir", help="One folder per sample here [default: outputs/world].")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Backend name, autoregressive or diffusers Cosmos folder, or hub id [default: toyworld]."),
    ] = None,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option("--checkpoint-dir", "--checkpoint_dir", help="Predict1: the folder holding --ar_model_dir."),
    ] = None,
    ar_model_dir: Annotated[
        str | None,
        typer.Option("--ar-model-dir", "--ar_model_dir", help="Predict1: the model folder inside --checkpoint_dir."),
    ] = None,
    input_type: Annotated[
        str | None,
        typer.Option("--input-type", "--input_type", help="Predict1: image | video | text_and_image | text_and_video."),
    ] = None,
    input_image_or_video_path: Annotated[
        Path | None,
        typer.Option(
            "--input-image-or-video-path",
            "--input_image_or_video_path",
            help="Predict1: one sample from this image or video (no spec file needed).",
        ),
    ] = None,
    prompt: Annotated[
        str | None, typer.Option(help="Predict1: the prompt of --input_image_or_video_path's sample.")
    ] = None,
    video_save_name: Annotated[
        str | None,
        typer.Option(
            "--video-save-name", "--video_save_name", help="Predict1: the single sample's name [default: output]."
        ),
    ] = None,
    video_save_folder: Annotated[
        Path | None,
        typer.Option(
            "--video-save-folder", "--video_save_folder", help="Predict1: where videos go [default: outputs]."
        ),
    ] = None,
    num_gpus: Annotated[
        int | None,
        typer.Option("--num-gpus", "--num_gpus", min=1, help="Predict1: processes torchrun started (checked)."),
    ] = None,
    inference_type: Annotated[
        str | None, typer.Option(help="text2world | image2world | video2world (default: from spec).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for every sample (default: the spec's, else 0).")] = None,
    num_input_frames: Annotated[
        int | None,
        typer.Option(
            "--num-input-frames", "--num_input_frames", help="Conditioning frames taken from the end of an input video."
        ),
    ] = None,
    num_output_frames: Annotated[int | None, typer.Option(help="Frames to generate (Cosmos diffusion: 4k+1).")] = None,
    resolution: Annotated[str | None, typer.Option(help='"480", "720" or "HxW" (multiples of 16).')] = None,
    fps: Annotated[int | None, typer.Option(help="Frames per second of the written video.")] = None,
    num_steps: Annotated[int | None, typer.Option(help="Denoising steps (diffusion backends).")] = None,
    guidance: Annotated[float | None, typer.Option(help="Classifier-free guidance on the prompt.")] = None,
    top_p: Annotated[
        float | None,
        typer.Option(
            "--top-p", "--top_p", help="Nucleus sampling (autoregressive backends; alone, samples at temperature 1)."
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="Sampling temperature (autoregressive backends; default 1.0 at top_p 0.8; 0 is greedy)."),
    ] = None,
    offload_model: Annotated[
        bool,
        typer.Option(
            "--offload-model", "--offload_ar_model", help="Keep the world model (transformer) on CPU between uses."
        ),
    ] = False,
    offload_text_encoder: Annotated[bool, typer.Option(help="Keep the text encoder on CPU between uses.")] = False,
    offload_tokenizer: Annotated[
        bool,
        typer.Option(
            "--offload-tokenizer",
            "--offload_tokenizer",
            help="Keep the video tokenizer's encoder (VAE encoder) on CPU.",
        ),
    ] = False,
    offload_decoder: Annotated[
        bool, typer.Option(help="Keep the video tokenizer's decoder (VAE decoder) on CPU.")
    ] = False,
    offload_guardrail: Annotated[
        bool,
        typer.Option(
            "--offload-guardrail", "--offload_guardrail_models", help="Keep guardrail models on CPU between checks."
        ),
    ] = False,
    offload_diffusion_decoder: Annotated[
        bool,
        typer.Option(
            "--offload-diffusion-decoder",
            "--offload_diffusion_decoder",
            help="Keep the diffusion decoder (tokens -> latents) on CPU between uses.",
        ),
    ] = False,
    diffusion_decoder: Annotated[
        bool,
        typer.Option(
            "--diffusion-decoder",
            help="Decode tokens with the model's diffusion decoder (the default when the model has one).",
        ),
    ] = False,
    disable_diffusion_decoder: Annotated[
        bool,
        typer.Option(
            "--disable-diffusion-decoder",
            "--disable_diffusion_decoder",
            help="Decode tokens with the tokenizer's own decoder instead of the diffusion decoder.",
        ),
    ] = False,
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
    predict1 = _Predict1(
        checkpoint_dir, ar_model_dir, input_type, input_image_or_video_path, prompt, video_save_name,
        video_save_folder, num_gpus,
    )  # fmt: skip
    try:
        model, output_dir, inference_type = predict1.resolve(model, output_dir, inference_type)
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
        check_output_folder(output_dir, "--video_save_folder" if predict1.layout == "predict1" else "-o")
        single = predict1.single_spec()
    except ValueError as err:  # SpecError included
        say(f"error: {err}")
        raise typer.Exit(2) from None
    batch = load_specs([*(inputs or []), *(more_inputs or [])])
    if single is not None:
        batch.specs.insert(0, single)
    if batch_input_path:
        lines = load_specs(batch_input_path=str(batch_input_path))
        if predict1.layout == "predict1":  # Predict1 names a batch's videos by their place in it: 0.mp4, 1.mp4...
            lines.specs = [spec.model_copy(update={"name": str(i)}) for i, spec in enumerate(lines.specs)]
        batch.specs += lines.specs
        batch.errors += lines.errors
    if not batch.specs and not batch.errors:
        say(
            "error: no specs given; pass -i SPEC.json, --batch-input-path BATCH.jsonl "
            "or --input_image_or_video_path INPUT"
        )
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
    offload = OffloadOptions(
        offload_model,
        offload_text_encoder,
        offload_tokenizer,
        offload_decoder,
        offload_guardrail,
        offload_diffusion_decoder,
    )
    if diffusion_decoder and disable_diffusion_decoder:
        say("error: --diffusion-decoder and --disable_diffusion_decoder contradict each other; keep one")
        raise typer.Exit(2)
    # Passed only when asked, so that backends without a diffusion decoder need not know the option
    extra = {"diffusion_decoder": diffusion_decoder} if diffusion_decoder or disable_diffusion_decoder else {}
    backend = None
    try:
        backend = get_backend(model, guardrail=guardrail, offload=offload, **extra) if specs else None
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
                layout=predict1.layout,
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


class _Predict1:
    """Cosmos-Predict1's options, checked together and turned into this command's: the model folder, the output
    folder and layout, the inference type, and the sample `--input_image_or_video_path` asks for."""

    def __init__(
        self, checkpoint_dir, ar_model_dir, input_type, input_path, prompt, save_name, save_folder, num_gpus
    ) -> None:
        self.checkpoint_dir, self.ar_model_dir, self.input_type = checkpoint_dir, ar_model_dir, input_type
        self.input_path, self.prompt, self.save_name, self.save_folder = input_path, prompt, save_name, save_folder
        self.num_gpus = num_gpus
        named = (checkpoint_dir, ar_model_dir, input_type, input_path, prompt, save_name, save_folder, num_gpus)
        self.layout = "predict1" if any(v is not None for v in named) else "cosmos"

    def resolve(self, model: str | None, output_dir: Path | None, inference_type: str | None):
        """(model, output folder, inference type), or a ValueError naming the flags that do not go together."""
        if self.num_gpus is not None:
            running = int(os.environ.get("WORLD_SIZE", "1"))
            if running != self.num_gpus:
                raise ValueError(
                    f"--num_gpus {self.num_gpus} but {running} process(es) are running (WORLD_SIZE={running}); "
                    f"start them with torchrun --nproc_per_node={self.num_gpus}, or pass --num_gpus {running}"
                )
        if self.checkpoint_dir is not None and self.ar_model_dir is None:
            raise ValueError("--checkpoint_dir needs --ar_model_dir, the model's folder inside it")
        if self.ar_model_dir is not None:
            if model is not None:
                raise ValueError("--model and --ar_model_dir both name the model; keep one")
            model = str((self.checkpoint_dir or Path("checkpoints")) / self.ar_model_dir)
        if self.save_folder is not None and output_dir is not None:
            raise ValueError("-o and --video_save_folder both name the output folder; keep one")
        default_folder = PREDICT1_FOLDER if self.layout == "predict1" else Path("outputs/world")
        output_dir = self.save_folder or output_dir or default_folder
        if self.input_type is not None:
            if self.input_type not in PREDICT1_INPUT_TYPES:
                raise ValueError(
                    f"--input_type {self.input_type!r} is unknown; use one of {', '.join(PREDICT1_INPUT_TYPES)}"
                )
            if inference_type is not None:
                raise ValueError("--input_type and --inference-type both set the inference type; keep one")
            inference_type = PREDICT1_INPUT_TYPES[self.input_type]
        if self.prompt is not None and self.input_path is None:
            raise ValueError("--prompt goes with --input_image_or_video_path; a spec file holds its own prompt")
        return model or "toyworld", output_dir, inference_type

    def single_spec(self):
        """The sample `--input_image_or_video_path` asks for, named `--video_save_name`; None without it."""
        if self.input_path is None:
            return None
        from theworld.world.spec import parse_spec

        raw = {"name": self.save_name or PREDICT1_NAME, "prompt": self.prompt, "input_path": str(self.input_path)}
        return parse_spec(raw, "--input_image_or_video_path", Path.cwd(), PREDICT1_NAME, predict1=True)
