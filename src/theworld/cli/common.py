"""What every command shares: thread count, model loading, and turning user errors into one clear line."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import torch
import typer
from rich.console import Console

from theworld.media import MediaError
from theworld.modeling.names import resolve_model_name

if TYPE_CHECKING:
    from theworld.modeling.modeling_theworld import TheWorld

__all__ = [
    "console",
    "fail",
    "is_terminal",
    "load_model",
    "save_imagined_world",
    "set_threads",
    "user_errors",
]

console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input (missing or corrupt files, impossible parameters, unknown models) ends in one line and exit 2."""
    try:
        yield
    except (MediaError, ValueError, FileNotFoundError, OSError) as error:
        fail(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)


def set_threads(threads: int | None) -> None:
    """PyTorch's thread count; on small CPUs one thread is often fastest, so users may choose."""
    if threads:
        torch.set_num_threads(threads)


def load_model(name: str, **kwargs) -> "TheWorld":
    """TheWorld and its processor from a name, folder or Hub id, with a clear error when it does not exist."""
    from transformers import AutoProcessor
    from transformers.utils import logging as transformers_logging

    from theworld.modeling.modeling_theworld import TheWorld

    transformers_logging.disable_progress_bar()  # a command's output is its answer or one error line
    path = resolve_model_name(name)
    looks_local = Path(path).exists() or path.startswith((".", "/", "~")) or path.count("/") > 1
    if looks_local and not (Path(path).expanduser() / "config.json").is_file():
        fail(f"Model not found: {name} (no config.json there). Pass a checkpoint folder, a Hub id, or 'theworld-tiny'.")
    try:
        model = TheWorld.from_pretrained(path, **kwargs).eval()
        model.processor = AutoProcessor.from_pretrained(model.name_or_path)
    except OSError as error:
        fail(f"Cannot load model {name}: {str(error).strip().splitlines()[0]}")
    return model


@torch.no_grad()
def save_imagined_world(model: "TheWorld", latents: torch.Tensor, path: Path) -> None:
    """Write the decoded frames of `latents` (from `TheWorld.imagine_image`) as PATH.png (a strip) and PATH.gif."""
    from theworld.media import save_strip_and_gif, to_uint8

    png, gif = save_strip_and_gif(to_uint8(model.world_encoder.decode(latents)[0]), path)
    console.print(f"imagined world saved to {png} and {gif}")


def is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
