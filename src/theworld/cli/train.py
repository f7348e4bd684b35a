"""`theworld train STAGE`: the recipes that build TheWorld-tiny on CPU."""

from dataclasses import fields, replace
from pathlib import Path

import typer

from theworld.cli.common import fail, set_threads, user_errors

__all__ = ["train"]


def train(
    stage: str = typer.Argument(
        "all",
        help="all | vae | dynamics | objects | language | hearing | speaking; not part of all: world-ar, then "
        "world-ar-decoder, then world-ar-text (the autoregressive world model), cosmos-dynamics",
    ),
    output_dir: Path = typer.Option(Path("runs/theworld-tiny"), help="The checkpoint folder the stages build."),
    settings: str = typer.Option("full", help="full (the shipped model) | smoke (a few steps, for tests)."),
    seed: int | None = typer.Option(None, help="Override the settings' seed."),
    world: bool | None = typer.Option(
        None,
        "--world/--no-world",
        help="--no-world: a baseline without the world parts (the language model sees the image's tokens only; "
        "the vae, dynamics and objects stages train nothing).",
    ),
    world_steps: int | None = typer.Option(
        None,
        min=0,
        max=4,
        help="Override the model's world steps (4): 0 gives the baseline with world tokens of the current frame "
        "only, no imagination (the dynamics stage trains nothing).",
    ),
    vae_trail_weight: float | None = typer.Option(
        None, min=1.0, help="Override how many times more the VAE's loss counts the faded motion trails (10)."
    ),
    vae_init: str | None = typer.Option(
        None,
        help="Override where the VAE's training starts: diffusers (its own, as the shipped model) or gemma (the "
        "language model's).",
    ),
    objects_steps: int | None = typer.Option(
        None, min=0, help="Override the objects stage's detector steps (0: train only the fact heads)."
    ),
    asked_facts: bool | None = typer.Option(
        None,
        "--asked-facts/--no-asked-facts",
        help="Override whether the language stage first gives the object reader pair facts picked by the question's "
        "words (the shipped model has them).",
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
    num_clips: int | None = typer.Option(None, min=1, help="Override how many clips the world-ar stage trains on."),
    tokenizer_steps: int | None = typer.Option(None, min=1, help="Override the world-ar stage's tokenizer steps."),
    transformer_steps: int | None = typer.Option(None, min=1, help="Override the world-ar stage's transformer steps."),
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
    from theworld.training.orchestration import train_all
    from theworld.training.recipe import STAGES, run_stage
    from theworld.training.settings import SETTINGS

    set_threads(threads)
    if stage != "all" and stage not in STAGES:
        fail(f"Unknown stage {stage!r}; choose one of all, {', '.join(STAGES)}")
    named = SETTINGS if stage == "all" else STAGES[stage].settings
    if settings not in named:
        fail(f"Unknown settings {settings!r}; choose one of {', '.join(named)}")
    overrides = {
        "seed": seed,
        "world": world,
        "world_steps": world_steps,
        "vae_trail_weight": vae_trail_weight,
        "vae_init": vae_init,
        "objects_steps": objects_steps,
        "asked_facts": asked_facts,
        "language_steps": language_steps,
        "language_clips": language_clips,
        "ears_steps": ears_steps,
        "speech_steps": speech_steps,
        "speech_clips": speech_clips,
        "hide_ctc_fillers": hide_ctc_fillers,
        "fresh_ears": fresh_ears,
        "acoustic_projection": acoustic_projection,
        "num_clips": num_clips,
        "tokenizer_steps": tokenizer_steps,
        "transformer_steps": transformer_steps,
    }
    given = {name: value for name, value in overrides.items() if value is not None}
    unknown = sorted(given.keys() - {field.name for field in fields(named[settings])})
    if unknown:  # a stage with settings of its own (`Stage.settings`) has none of the others' knobs
        options = ", ".join("--" + name.replace("_", "-") for name in unknown)
        fail(f"{options} does not apply to the {stage} stage; leave it out")
    if stage not in ("all", "vae") and (world is not None or world_steps is not None):
        fail(
            f"--world/--no-world and --world-steps shape the model the first stage makes: use them with `all` or "
            f"`vae`, not `{stage}`"
        )
    shaping = {
        "--vae-trail-weight": (vae_trail_weight, "vae"),
        "--vae-init": (vae_init, "vae"),
        "--asked-facts": (asked_facts, "language"),
    }
    for name, (value, shaped) in shaping.items():
        if stage not in ("all", shaped) and value is not None:
            fail(f"{name} does not apply to the {stage} stage; use it with `all` or `{shaped}`")
    if vae_init not in (None, "gemma", "diffusers"):
        fail(f"Unknown --vae-init {vae_init!r}; choose gemma or diffusers")
    if world is False and world_steps is not None:
        fail("--world-steps needs the world; leave out --no-world or --world-steps")
    if world is False and asked_facts:
        fail("--asked-facts needs the world's object reader; leave out --no-world or --asked-facts")
    chosen = replace(named[settings], **given)
    with user_errors():
        if stage == "all":
            train_all(output_dir, chosen, jobs=jobs)
        else:
            run_stage(stage, output_dir, chosen, jobs=jobs)
