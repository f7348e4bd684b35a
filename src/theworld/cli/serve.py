"""`theworld serve`: the OpenAI-compatible server (FastAPI on uvicorn), on localhost unless told otherwise.

The defaults here are `ServerSettings`' (tests/test_serve.py checks they agree); the endpoints and every limit
are in docs/serve.md.
"""

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
    load_model,
    set_threads,
    user_errors,
)

__all__ = ["serve"]


def serve(
    model_name: str = typer.Option("theworld-tiny", "--model", help="Checkpoint folder, Hub id, or 'theworld-tiny'."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000, min=0, max=65535),
    api_key: str | None = typer.Option(
        None, envvar="THEWORLD_API_KEY", show_envvar=True, help="Clients must send it as a Bearer token."
    ),
    max_batch_size: int = typer.Option(16, min=1, help="Chat requests answered by one generate."),
    batch_wait_ms: float = typer.Option(5.0, min=0, help="How long a batch waits for more requests."),
    allowed_media_path: Path | None = typer.Option(None, help="Allow file:// media under this folder (default none)."),
    max_request_mb: float = typer.Option(32.0, help="Largest request body."),
    max_media_mb: float = typer.Option(16.0, help="Largest image, recording or video in a request."),
    max_image_pixels: int = typer.Option(4096 * 4096, help="Largest image or video frame (width x height)."),
    max_audio_seconds: float = typer.Option(30.0, help="Longest recording (at most 30 s)."),
    max_video_frames: int = typer.Option(1024, help="Most frames in a video."),
    max_video_jobs: int = typer.Option(64, help="Video jobs kept (queued, running or done) until deleted."),
    max_tokens_cap: int = typer.Option(1024, help="Largest max_tokens a request may ask for."),
    max_choices: int = typer.Option(8, help="Largest n a request may ask for."),
    max_speech_chars: int = typer.Option(4096, help="Longest text /v1/audio/speech speaks."),
    world_model: str = typer.Option("toyworld", help="The world-generation model of /v1/videos."),
    threads: int | None = typer.Option(None, help="PyTorch CPU threads."),
    quantize: Quantization | None = QUANTIZE_OPTION,
    compile: bool = COMPILE_OPTION,
    device: str = DEVICE_OPTION,
    offload_world_model: bool = OFFLOAD_WORLD_MODEL_OPTION,
) -> None:
    """Serve the OpenAI API (chat with images, video and speech; speech; transcription; world videos)."""
    import logging

    import uvicorn
    from pydantic import ValidationError

    from theworld.serve.app import create_app
    from theworld.serve.settings import ServerSettings

    set_threads(threads)
    try:
        settings = ServerSettings(
            model=model_name,
            world_model=world_model,
            host=host,
            port=port,
            api_key=api_key or None,
            max_batch_size=max_batch_size,
            batch_wait_ms=batch_wait_ms,
            allowed_media_path=allowed_media_path,
            max_request_mb=max_request_mb,
            max_media_mb=max_media_mb,
            max_image_pixels=max_image_pixels,
            max_audio_seconds=max_audio_seconds,
            max_video_frames=max_video_frames,
            max_video_jobs=max_video_jobs,
            max_tokens_cap=max_tokens_cap,
            max_choices=max_choices,
            max_speech_chars=max_speech_chars,
            quantize=quantize and quantize.value,
            compile=compile,
            device=device,
            offload_world_model=offload_world_model,
        )
    except ValidationError as error:
        first = error.errors()[0]
        fail(f"--{str(first['loc'][0]).replace('_', '-')} {first['input']}: {first['msg']}")
    with user_errors():
        model = load_model(
            settings.model,
            device=settings.device,
            offload_world_model=settings.offload_world_model,
            quantization=settings.quantize,
            compile=settings.compile,
        )
        app = create_app(settings, model)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = "an API key" if settings.api_key else "no API key"
    console.print(f"TheWorld serves {settings.model} on http://{settings.host}:{settings.port}/v1 ({key})")
    uvicorn.run(app, host=settings.host, port=settings.port, access_log=False, log_level="info")
