"""What a stage of `theworld train` is: a function of a `StageContext` that trains and returns its metrics, with
its settings by name."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from transformers import ProcessorMixin

from theworld.modeling.modeling_theworld import TheWorld
from theworld.omni.talker import Speaker
from theworld.training.settings import RecipeSettings

__all__ = ["Stage", "StageContext", "StageFunction", "report_figures"]


@dataclass
class StageContext:
    """What a stage works with. `run_stage` fills in the stage's name, its folder, its settings, how many
    processes it may train in (`jobs`), and the folder where `train all`'s second process prepared the speech
    stages' data, ear and voice (`speech_folder`). A stage of TheWorld's checkpoint (`checkpoint_stage`) also gets
    the model and processor; it may replace the processor or train a voice (`speaker`), and both are saved with
    the model. A stage with a settings table of its own (`Stage.settings`) gets one of those as `settings`."""

    stage: str
    output_dir: Path
    settings: RecipeSettings
    jobs: int = 1
    speech_folder: Path | None = None
    model: TheWorld | None = None
    processor: ProcessorMixin | None = None
    speaker: Speaker | None = None


StageFunction = Callable[[StageContext], dict]


@dataclass(frozen=True)
class Stage:
    """One stage of `theworld train`: `train(context) -> metrics`, and the settings it takes, by name."""

    train: StageFunction
    settings: Mapping[str, object]


def report_figures(stage: str, metrics: dict) -> dict:
    """Print a finished stage's figures on one line (stderr) and return them."""
    figures = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    Console(stderr=True).print(f"[green]{stage}[/green] done: {figures}")
    return metrics
