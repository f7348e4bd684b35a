"""`theworld train STAGE`: the recipes that build TheWorld-tiny on CPU."""

from dataclasses import replace
from pathlib import Path

import typer

from theworld.cli.common import fail, set_threads, user_errors

__all__ = ["train"]


def train(
    stage: str = typer.Argument("all", help="all | vae | dynamics | objects | language | hearing | speaking"),
    output_dir: Path = typer.Option(Path("runs/theworld-tiny"), help="The checkpoint folder the stages build."),
    settings: str = typer.Option("full", help="full (the shipped model) | smoke (a few steps, for tests)."),
    seed: int | None = typer.Option(None, help="Override the settings' seed."),
    objects_steps: int | None = typer.Option(
        None, min=0, help="Override the objects stage's detector steps (0: train only the fact heads)."
    ),
    language_steps: int | None = typer.Option(None, min=1, help="Override the language stage's steps."),
    language_clips: int | None = typer.Option(
        None, min=1, help="Override how many training clips the language stage asks questions about."
    ),
    ears_steps: int | None = typer.Option(
        None, min=0, help="Override the hearing stage's transcription (CTC) pre-training steps."
    ),
    speech_steps: int | None = typer.Option(None, min=1, help="Override the hearing stage's steps."),
    speech_clips: int | None = typer.Option(
        None, min=1, help="Override how many training clips the hearing stage asks (typed and spoken) questions about."
    ),
    fresh_ears: bool | None = typer.Option(
        None, help="Override whether the hearing stage trains a new ear from scratch instead of the checkpoint's."
    ),
    hide_ctc_fillers: bool | None = typer.Option(
        None, help="Override whether the hearing stage hides CTC compression's fillers from attention."
    ),
    acoustic_projection: bool | None = typer.Option(
        None, help="Override whether the hearing stage's audio tokens add a projection of the acoustics."
    ),
    threads: int | None = typer.Option(1, help="PyTorch CPU threads (1 is fastest on 2-core machines)."),
    jobs: int = typer.Option(
        2,
        min=1,
        max=2,
        help="2: the language stage splits each batch between two processes, and `all` trains the ear and the "
        "voice in a second process beside the world stages (the same checkpoint as 1, in less time on 2 cores).",
    ),
) -> None:
    """Train the tiny default model from scratch on ToyWorld: tokenizer, VAE, dynamics, object reader, language,
    hearing, speaking. `all` runs them in order; with `--jobs 2` the ear's transcription training and the voice in
    a second process beside the world stages, and the language stage in two processes, half a batch each.

    A stage run on a folder that already has it continues from its weights (another pass). The shipped model is
    what `all` builds with the full settings (seed 0): one pass per stage."""
    from theworld.training.recipe import SETTINGS, STAGES, run_stage, train_all

    set_threads(threads)
    if settings not in SETTINGS:
        fail(f"Unknown settings {settings!r}; choose one of {', '.join(SETTINGS)}")
    if stage != "all" and stage not in STAGES:
        fail(f"Unknown stage {stage!r}; choose one of all, {', '.join(STAGES)}")
    overrides = {
        "seed": seed,
        "objects_steps": objects_steps,
        "language_steps": language_steps,
        "language_clips": language_clips,
        "ears_steps": ears_steps,
        "speech_steps": speech_steps,
        "speech_clips": speech_clips,
        "hide_ctc_fillers": hide_ctc_fillers,
        "fresh_ears": fresh_ears,
        "acoustic_projection": acoustic_projection,
    }
    chosen = replace(SETTINGS[settings], **{k: v for k, v in overrides.items() if v is not None})
    with user_errors():
        if stage == "all":
            train_all(output_dir, chosen, jobs=jobs)
        else:
            run_stage(stage, output_dir, chosen, jobs=jobs)
