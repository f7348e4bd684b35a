"""`theworld ask IMAGE QUESTION`: one answer about one image, with the imagined future first."""

from pathlib import Path

import typer

from theworld.cli.common import (
    COMPILE_OPTION,
    DEVICE_OPTION,
    OFFLOAD_WORLD_MODEL_OPTION,
    QUANTIZE_OPTION,
    Quantization,
    fail,
    load_model,
    save_imagined_world,
    set_threads,
    user_errors,
)
from theworld.cli.outputs import check_output_file, writing

__all__ = ["ask"]


def ask(
    image: Path = typer.Argument(..., help="The image to ask about (PNG, JPEG, ...)."),
    question: str = typer.Argument(..., help="The question, e.g. 'where will the red shape be after 2 steps?'"),
    model_name: str = typer.Option("theworld-tiny", "--model", help="Checkpoint folder, Hub id, or 'theworld-tiny'."),
    world_steps: int | None = typer.Option(None, help="Future frames to imagine first (default: the model's)."),
    save_world: Path | None = typer.Option(None, help="Write the imagined frames as PATH.png (strip) and PATH.gif."),
    max_new_tokens: int = typer.Option(16, min=1),
    temperature: float | None = typer.Option(None, min=0.0, help="Sample with this temperature (default greedy)."),
    top_p: float | None = typer.Option(None, min=0.0, max=1.0),
    num_beams: int = typer.Option(1, min=1),
    threads: int | None = typer.Option(None, help="PyTorch CPU threads."),
    quantize: Quantization | None = QUANTIZE_OPTION,
    compile: bool = COMPILE_OPTION,
    device: str = DEVICE_OPTION,
    offload_world_model: bool = OFFLOAD_WORLD_MODEL_OPTION,
) -> None:
    """Answer a question about an image; the world model imagines the scene's future first."""
    from theworld.media import load_image

    set_threads(threads)
    if not question.strip():
        fail("The question is empty; ask something about the image, e.g. 'where will the red shape be after 2 steps?'")
    with user_errors():
        if save_world is not None:
            check_output_file(save_world, "--save-world")
        picture = load_image(image)  # a bad image fails before the model loads
        model = load_model(
            model_name,
            with_images=True,
            device=device,
            offload_world_model=offload_world_model,
            quantization=quantize and quantize.value,
            compile=compile,
        )
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature else {}
        # With --save-world the world is imagined once: the answer reads the latents that are drawn.
        reply = model.ask(
            picture,
            question,
            num_world_steps=world_steps,
            return_world_latents=save_world is not None,
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            **sampling,
        )
    answer, latents = reply if save_world is not None else (reply, None)
    print(answer)  # before the frames are written: a file that cannot be written costs no answer
    if latents is not None:
        with user_errors(), writing(save_world, "--save-world"):
            save_imagined_world(model, latents, save_world)
