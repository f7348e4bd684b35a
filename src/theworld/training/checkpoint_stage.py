"""How a stage of TheWorld's checkpoint runs: the folder the previous stage wrote is loaded (the first stage makes
a new model), the seed is set, the stage trains, and the folder is written back atomically with the stage's
metrics in training_log.json. Everything is seeded: the same settings give the same checkpoint.

With `jobs=2` a stage may train in two processes (`in_two_processes`): a helper loads the same checkpoint, seeds it
the same way and runs the same stage on the other data shards; only this process saves.
"""

import json
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, replace
from pathlib import Path

import torch
from rich.console import Console
from transformers import AutoProcessor

from theworld.media import write_folder_atomically
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.presets import config_from_name, preset_world_objects
from theworld.modeling.processing import build_processor, train_tokenizer
from theworld.omni.talker import SPEAKER_FOLDERS
from theworld.toyworld import COLOURS, KINDS, make_examples
from theworld.training.parallel import data_parallel
from theworld.training.settings import RecipeSettings
from theworld.training.stage import StageContext, StageFunction

__all__ = ["checkpoint_stage", "console", "in_two_processes", "measured", "new_model"]

console = Console(stderr=True)


def new_model(settings: RecipeSettings) -> tuple[TheWorld, object]:
    """A fresh model and processor: the tokenizer is trained on the training split's language."""
    examples = make_examples("train", max(settings.language_clips // 4, 8), questions_per_clip=8)
    corpus = [f"{e.question} {e.answer}" for e in examples]
    # Object names and kind words must be one token each (`resolve_world_objects`); on a small corpus (the smoke
    # settings) they are not frequent enough to be merged whole, so the corpus names them outright as well.
    world_objects = preset_world_objects(settings.preset, COLOURS, KINDS) or {}
    words = [*world_objects.get("names", []), *(world_objects.get("kinds") or [])]
    corpus += [" ".join(words)] * 50 if words else []
    processor = build_processor(train_tokenizer(corpus, settings.vocab_size), image_size=64, image_seq_length=16)
    world: dict = {"world_objects": world_objects or None}
    if not settings.world:
        world = {"world_objects": None, "enable_world": False, "num_world_steps": 0}
    elif settings.world_steps is not None:
        world["num_world_steps"] = settings.world_steps
    config = config_from_name(settings.preset, processor.tokenizer, **world)
    torch.manual_seed(settings.seed)
    model = TheWorld(config)
    if settings.vae_init not in ("gemma", "diffusers"):
        raise ValueError(f"Unknown vae_init {settings.vae_init!r}; choose gemma or diffusers")
    if settings.vae_init == "diffusers" and model.config.enable_world:
        model.world_encoder.reset_vae_parameters()
    end_of_turn = processor.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    model.generation_config.eos_token_id = [processor.tokenizer.eos_token_id, end_of_turn]
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.max_new_tokens = 16
    return model, processor


def _load(output_dir: Path) -> tuple[TheWorld, object]:
    if not (output_dir / "config.json").is_file():
        raise FileNotFoundError(f"{output_dir} has no checkpoint yet; run `theworld train vae` (or `all`) first")
    return TheWorld.from_pretrained(output_dir), AutoProcessor.from_pretrained(output_dir)


def checkpoint_stage(train: StageFunction, first: bool = False) -> StageFunction:
    """`train` as a stage of the checkpoint in `context.output_dir`: it gets the model and processor loaded from
    there (with `first`, a new model), seeded by the settings, and the folder is saved back after it."""

    def run(context: StageContext) -> dict:
        settings = context.settings
        context.model, context.processor = new_model(settings) if first else _load(context.output_dir)
        torch.manual_seed(settings.seed)
        started = time.perf_counter()
        metrics = train(context)
        metrics[f"{context.stage}_seconds"] = round(time.perf_counter() - started, 1)
        _save_atomically(context, metrics)
        console.print(
            f"[green]{context.stage}[/green] done: " + ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items())
        )
        return metrics

    return run


def in_two_processes(context: StageContext, shards: int, train: StageFunction) -> AbstractContextManager:
    """`data_parallel` for the body of the stage `train` (a module-level function: it is pickled), over `shards`
    data shards: with `context.jobs=2` a helper process trains on the other shards as rank 1."""
    helper_context = replace(context, jobs=1, model=None, processor=None, speaker=None)
    return data_parallel(min(context.jobs, shards), _train_other_shards, (train, helper_context))


def _train_other_shards(train: StageFunction, context: StageContext) -> None:
    """Rank 1 of a stage's process group: the checkpoint rank 0 loaded, seeded as rank 0 is, the same steps on
    the other shard (or stream of draws)."""
    context.model, context.processor = _load(context.output_dir)
    torch.manual_seed(context.settings.seed)
    train(context)


def measured(measure: Callable, *args) -> dict:
    """A stage's closing measurement; if it fails, the trained weights are still saved, with the error logged."""
    try:
        return measure(*args)
    except Exception as error:  # noqa: BLE001 - minutes of training must not be lost to a failing figure
        console.print(f"[yellow]measurement failed, the checkpoint is saved anyway:[/yellow] {error}")
        return {"error": f"{type(error).__name__}: {error}"}


def _save_atomically(context: StageContext, metrics: dict) -> None:
    """Write the whole folder next to its destination, then swap it in: a crash never leaves half a checkpoint."""
    output_dir = context.output_dir
    log_path = output_dir / "training_log.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    # Every pass of a stage is kept, in order.
    log.setdefault(context.stage, []).append({"metrics": metrics, "settings": asdict(context.settings)})

    def fill(staging: Path) -> None:
        context.model.save_pretrained(staging)
        context.processor.save_pretrained(staging)
        if context.speaker is not None:
            context.speaker.save_pretrained(staging)
        else:  # the voice trained by an earlier speech stage stays with the checkpoint
            for folder in SPEAKER_FOLDERS:
                if (output_dir / folder).is_dir():
                    shutil.copytree(output_dir / folder, staging / folder)
        (staging / "training_log.json").write_text(json.dumps(log, indent=2))

    write_folder_atomically(output_dir, fill)


def _fmt(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(_fmt, value)) + "]"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
