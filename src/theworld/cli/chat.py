"""`theworld chat`: one-shot answers streamed token by token, or an interactive multi-turn chat."""

from pathlib import Path

import typer

from theworld.cli.common import (
    COMPILE_OPTION,
    DEVICE_OPTION,
    OFFLOAD_WORLD_MODEL_OPTION,
    QUANTIZE_OPTION,
    Quantization,
    console,
    fail,
    is_terminal,
    load_model,
    save_imagined_world,
    set_threads,
    user_errors,
)
from theworld.cli.outputs import check_output_file, writing

__all__ = ["chat"]

HELP = "commands: /image PATH, /video PATH, /audio PATH, /world N, /clear, exit"


def chat(
    model_name: str = typer.Option(
        "theworld-tiny",
        "--model",
        "--ckpt-dir",
        "--ckpt_dir",  # the spelling tiny omni models' infer_chat scripts use
        help="Checkpoint folder, Hub id, or 'theworld-tiny'.",
    ),
    text: str | None = typer.Option(None, help="The message; without it (on a terminal) chat interactively."),
    image: Path | None = typer.Option(None, help="An image to talk about."),
    video: Path | None = typer.Option(None, help="A video: the world model reads the clip, the LM its last frame."),
    audio_in: Path | None = typer.Option(
        None, "--audio-in", "--audio_in", help="Speech in (wav/flac/ogg): a spoken question, with or without --text."
    ),
    audio_out: Path | None = typer.Option(
        None, "--audio-out", "--audio_out", help="Speak the answer too: write it as a 16 kHz wav at this path."
    ),
    prompt: str | None = typer.Option(None, help="A system prompt."),
    world_steps: int | None = typer.Option(None, help="Future frames to imagine (default: the model's)."),
    max_new_tokens: int = typer.Option(64, min=1),
    temperature: float | None = typer.Option(None, min=0.0, help="Sample with this temperature (default greedy)."),
    top_p: float | None = typer.Option(None, min=0.0, max=1.0),
    num_beams: int = typer.Option(1, min=1),
    save_world: Path | None = typer.Option(
        None, help="Write the imagined frames of --image or --video as PATH.png and PATH.gif."
    ),
    threads: int | None = typer.Option(None, help="PyTorch CPU threads."),
    quantize: Quantization | None = QUANTIZE_OPTION,
    compile: bool = COMPILE_OPTION,
    device: str = DEVICE_OPTION,
    offload_world_model: bool = OFFLOAD_WORLD_MODEL_OPTION,
) -> None:
    """Chat with TheWorld about images and videos; it imagines the scene's future before it answers."""
    from theworld.media import load_image

    set_threads(threads)
    one_shot = text is not None or audio_in is not None
    if not one_shot and not is_terminal():
        fail("No input: pass --text or --audio-in (with --image/--video if you like), or run in a terminal to chat.")
    if text is not None and not text.strip():
        fail("--text is empty; pass a message, or leave --text out to ask with --audio-in alone")
    if image is not None and video is not None:
        fail("--image and --video both given; pass one of them (attach more with /image and /video in a chat)")
    if save_world is not None and image is None and video is None:
        fail("--save-world draws the imagined future of --image or --video; pass one of them")
    generation = {"max_new_tokens": max_new_tokens, "num_beams": num_beams}
    if temperature:
        generation.update(do_sample=True, temperature=temperature, top_p=top_p)
    with user_errors():
        for path, flag in ((audio_out, "--audio-out"), (save_world, "--save-world")):
            if path is not None:
                check_output_file(path, flag)
        model = load_model(
            model_name,
            with_images=image is not None or video is not None,
            device=device,
            offload_world_model=offload_world_model,
            quantization=quantize and quantize.value,
            compile=compile,
        )
        from theworld.chat import ChatSession  # torch and transformers: after a bad model name has had its answer

        session = ChatSession(model, system_prompt=prompt, num_world_steps=world_steps)
        if save_world is not None and not model.config.enable_world:
            fail(f"--save-world draws the imagined world, but {model_name} has no world model; leave it out")
        if image is not None:
            session.attach_image(load_image(image))
        if video is not None:
            session.attach_video(video)
        if audio_in is not None:
            session.attach_audio(audio_in)
        speaker = load_speaker(model) if audio_out is not None else None

        def respond(message: str | None) -> None:
            """Stream the answer to `message` (and the attached media), and speak it with --audio-out."""
            answer = session.reply(message, stream=True, **generation)
            if speaker is not None:
                with writing(audio_out, "--audio-out"):
                    speak_to_file(speaker, answer, audio_out)

        def draw_world() -> None:
            """The world of --image or --video, as the answer read it: drawn after the answer, so a file that
            cannot be written costs no answer."""
            with writing(save_world, "--save-world"):
                save_imagined_world(model, session.imagined_world(), save_world)

        if one_shot:
            # Shells pass "\n" as two characters; completion prompts ("Question: ...\nAnswer:") need a newline.
            respond(text.replace("\\n", "\n") if text else None)
            if save_world is not None:
                draw_world()
            return
        if save_world is not None:
            draw_world()
    console.print(f"TheWorld chat ({model_name}). {HELP}")
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if line in ("exit", "quit", "/exit", "/quit"):
            return
        with user_errors_in_chat():
            if not line:
                continue
            command, _, argument = line.partition(" ")
            if command == "/image":
                session.attach_image(argument.strip())
                console.print(f"image attached: {argument.strip()}")
            elif command == "/video":
                session.attach_video(argument.strip())
                console.print(f"video attached: {argument.strip()}")
            elif command == "/audio":
                session.attach_audio(argument.strip())
                print("theworld> ", end="", flush=True)  # the recording is the question: answer it now
                respond(None)
            elif command == "/clear":
                session.clear()
                console.print("conversation cleared")
            elif command == "/world":
                steps = int(argument)
                model.check_world_steps(steps)
                session.num_world_steps = steps
                console.print(f"world steps: {steps}")
            elif command.startswith("/"):
                console.print(f"unknown command {command}; {HELP}")
            else:
                print("theworld> ", end="", flush=True)
                respond(line)


def load_speaker(model):
    """The checkpoint's voice (talker + codec), checked before any answer is generated."""
    from theworld.omni.talker import Speaker

    return Speaker.from_pretrained(Path(model.name_or_path))


def speak_to_file(speaker, answer: str, path: Path) -> None:
    from theworld.omni.audio import save_audio

    if not answer.strip():
        console.print("[yellow]nothing to say: the answer is empty, no audio written[/yellow]")
        return
    save_audio(path, speaker.speak(answer), speaker.sampling_rate)
    console.print(f"spoken answer saved to {path}")


class user_errors_in_chat:  # noqa: N801 - used as a context manager, like contextlib's
    """In the interactive loop a bad command prints one line and the chat goes on."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if error is not None and isinstance(error, (ValueError, OSError)):
            console.print(f"[red]error:[/red] {str(error).strip().splitlines()[0]}", highlight=False)
            return True
        return False
