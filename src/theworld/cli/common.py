"""What every command shares: thread count, model loading, and turning user errors into one clear line."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

from theworld.media import MediaError

if TYPE_CHECKING:
    import torch

    from theworld.modeling.modeling_theworld import TheWorld

__all__ = [
    "COMPILE_OPTION",
    "DEVICE_OPTION",
    "OFFLOAD_WORLD_MODEL_OPTION",
    "QUANTIZE_OPTION",
    "Quantization",
    "console",
    "fail",
    "is_terminal",
    "load_model",
    "save_imagined_world",
    "set_threads",
    "user_errors",
]

console = Console(stderr=True)


# The decoding speed-ups of `TheWorld.from_pretrained` (theworld.modeling.fast_decode), shared by ask, chat and serve;
# the choices are theworld.modeling.quantization.QUANTIZATIONS, named here so that --help imports no torch.
class Quantization(StrEnum):
    int8 = "int8"
    q8_0 = "q8_0"


QUANTIZE_OPTION = typer.Option(
    None,
    "--quantize",
    help="Smaller weights for faster CPU decoding: q8_0 (llama.cpp's 8-bit blocks, AVX2) or int8 (docs/real-gemma.md).",
)
COMPILE_OPTION = typer.Option(
    False, "--compile", help="torch.compile the language model's layers (the first answer waits for it)."
)
DEVICE_OPTION = typer.Option("cpu", "--device", help="Where the model runs: cpu, or an accelerator (cuda, cuda:1).")
OFFLOAD_WORLD_MODEL_OPTION = typer.Option(
    False,
    "--offload-world-model",
    help="With --device cuda: keep a Cosmos predictor (dynamics_type='cosmos') on the CPU between imaginings.",
)


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
    if threads is not None and threads < 1:
        fail(f"--threads {threads} is impossible; pass 1 or more (up to the number of CPU cores)")
    if threads:
        import torch

        torch.set_num_threads(threads)


def load_model(
    name: str, with_images: bool = False, device: str = "cpu", offload_world_model: bool = False, **kwargs
) -> "TheWorld":
    """TheWorld and its processor from a name, folder or Hub id, placed on `device` (`TheWorld.place`). What can be
    told without the weights is refused before they load: an unknown name (before the heavy imports too), a device
    this machine lacks, images for a model that cannot see them, a folder without a tokenizer."""
    from theworld.modeling.names import locate_model

    if offload_world_model and device == "cpu":
        fail(
            "--offload-world-model keeps the world model on the CPU while the rest runs on --device; pass --device "
            "cuda (an accelerator), or leave it out"
        )
    if device != "cpu":
        _check_device(device)

    location = locate_model(name)
    kwargs.setdefault("local_files_only", location.local_files_only)  # a cached Hub id, the Hub out of reach

    from transformers.utils import logging as transformers_logging

    from theworld.modeling.loading import describe_checkpoint, load_processor
    from theworld.modeling.modeling_theworld import TheWorld

    transformers_logging.disable_progress_bar()  # a command's output is its answer or one error line
    try:
        checkpoint = describe_checkpoint(location.path, local_files_only=kwargs["local_files_only"])
    except ImportError as error:  # a packaged model whose package is missing: the message names it
        fail(str(error))
    if with_images and not checkpoint.can_see:
        kind = "a base (text-completion) model" if checkpoint.is_base else "a text-only model"
        fail(f"{name} is {kind} and cannot see images or video; drop them, or pass a model that sees (theworld-tiny)")
    is_gguf = checkpoint.path.endswith(".gguf")  # its tokenizer is in the folder the conversion writes
    try:
        processor = None if is_gguf else load_processor(checkpoint.path, kwargs["local_files_only"])
        model = TheWorld.from_pretrained(checkpoint.path, **kwargs).eval()
        model.processor = load_processor(model.name_or_path) if is_gguf else processor
    except (OSError, ImportError) as error:
        fail(f"Cannot load model {name}: {str(error).strip().splitlines()[0]}")
    if device != "cpu":  # --offload-world-model on the CPU was refused above
        try:
            model.place(device, offload_world_model=offload_world_model)
        except ValueError as error:
            fail(f"{name}: {error}")
    return model


def _check_device(device: str) -> None:
    import torch

    try:
        wanted = torch.device(device)
    except RuntimeError:
        fail(f"--device {device!r} is not a device; pass cpu, cuda or cuda:N")
    available = getattr(torch, wanted.type, None)
    if available is None or not hasattr(available, "is_available") or not available.is_available():
        fail(f"--device {device}: this machine has no {wanted.type} device; pass --device cpu")
    if wanted.index is not None and wanted.index >= available.device_count():
        fail(f"--device {device}: this machine has {available.device_count()} {wanted.type} device(s)")


def save_imagined_world(model: "TheWorld", latents: "torch.Tensor", path: Path) -> None:
    """Write the decoded frames of `latents` (from `TheWorld.ask(..., return_world_latents=True)` or
    `ChatSession.imagined_world()`) as PATH.png (a strip) and PATH.gif."""
    import torch

    from theworld.media import save_strip_and_gif, to_uint8

    with torch.no_grad():
        frames = model.draw_world(latents)[0]
    png, gif = save_strip_and_gif(to_uint8(frames), path)
    console.print(f"imagined world saved to {png} and {gif}")


def is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
