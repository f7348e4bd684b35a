"""World generation as OpenAI-style video jobs: `POST /v1/videos`, `GET /v1/videos/{id}`,
`GET /v1/videos/{id}/content` (the mp4) and `DELETE /v1/videos/{id}`.

A request carries a Cosmos spec's fields (`prompt`, `inference_type`, `num_output_frames` or `seconds`, `seed`,
`guidance`, `fps`, `num_steps`, `negative_prompt`, `top_p`, `temperature`) and OpenAI's (`size` as WIDTHxHEIGHT,
`input_reference` as an upload or a data: URI, `model`), as JSON or multipart/form-data (what `client.videos.create`
sends; the Cosmos fields go through `extra_body`). The input is read with the server's limits checked first, the
fields are validated by the world spec's own model (`WorldSpec`), and the job runs in `JobQueue`'s worker.
"""

import io
import mimetypes
import re
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from theworld.serve.errors import APIError
from theworld.serve.inputs import open_url, read_image, read_video
from theworld.serve.jobs import OUTPUT_NAME, JobLimitError, JobQueue, VideoJob
from theworld.serve.limits import check_media_bytes, check_pixels, check_video_frames
from theworld.serve.models import check_model
from theworld.serve.settings import LIMITS, ServerSettings
from theworld.world.backends import WorldBackend
from theworld.world.runner import build_request
from theworld.world.spec import SpecError, check_overrides, parse_spec

__all__ = ["Video", "VideoCreate", "VideoDeleted", "router"]

REFERENCE = "input_reference"
_VIDEO_SUFFIXES = {"video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov", "image/gif": ".gif"}


class VideoCreate(BaseModel):
    """The fields of `POST /v1/videos` besides the input; form fields arrive as text, so numbers are parsed.
    Ranges are the world spec's to check. Unknown fields are ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="ignore")

    prompt: str | None = None
    model: str | None = None
    inference_type: str | None = None
    negative_prompt: str | None = None
    seconds: float | None = Field(None, gt=0, allow_inf_nan=False, description="duration; or num_output_frames")
    num_output_frames: int | None = None
    num_input_frames: int | None = None
    seed: int | None = None
    guidance: float | None = None
    num_steps: int | None = None
    fps: int | None = None
    size: str | None = Field(None, description="WIDTHxHEIGHT, as OpenAI writes it, e.g. 64x64")
    top_p: float | None = None
    temperature: float | None = None


class VideoError(BaseModel):
    code: str
    message: str


class Video(BaseModel):
    """OpenAI's video job object."""

    id: str
    object: Literal["video"] = "video"
    created_at: int
    completed_at: int | None = None
    expires_at: int | None = None
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    model: str
    prompt: str
    seconds: str
    size: str
    error: VideoError | None = None

    @classmethod
    def of(cls, job: VideoJob) -> "Video":
        height, width = job.size
        error = VideoError(code=job.error_code, message=job.error_message or "") if job.error_code else None
        return cls(
            id=job.id,
            created_at=job.created_at,
            completed_at=job.completed_at,
            status=job.status,
            progress=job.progress,
            model=job.model,
            prompt=job.spec.prompt,
            seconds=f"{job.num_frames / job.fps:g}",
            size=f"{width}x{height}",
            error=error,
        )


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


@asynccontextmanager
async def _lifespan(app: FastAPI):
    settings: ServerSettings = app.state.settings
    app.state.video_jobs = JobQueue(settings.world_model, settings.max_video_jobs)
    try:
        yield
    finally:
        await run_in_threadpool(app.state.video_jobs.close)


# The app includes this router behind its API-key dependency, as it does every router but /health.
router = APIRouter(prefix="/v1/videos", lifespan=_lifespan)


def _jobs(request: Request) -> JobQueue:
    return request.app.state.video_jobs


def _not_found(video_id: str) -> APIError:
    shown = video_id if len(video_id) <= 64 else video_id[:64] + "..."
    return APIError(404, f"no video job {shown!r}; use an id POST /v1/videos returned", "video_id", "not_found")


def _job(request: Request, video_id: str) -> VideoJob:
    job = _jobs(request).get(video_id)
    if job is None:
        raise _not_found(video_id)
    return job


async def _fields(request: Request, settings: ServerSettings) -> tuple[dict[str, Any], UploadFile | str | None]:
    """The request's fields and its input (an upload, a URL, or None), from multipart/form-data or JSON."""
    if request.headers.get("content-type", "").split(";")[0].strip() in (
        "multipart/form-data",
        "application/x-www-form-urlencoded",
    ):
        form = await request.form(max_part_size=settings.max_request_bytes)
        fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        uploads = [value for key, value in form.multi_items() if key == REFERENCE and not isinstance(value, str)]
        reference = (
            uploads[0] if uploads else fields.pop(REFERENCE, None) or fields.pop(f"{REFERENCE}[image_url]", None)
        )
        return fields, reference
    try:
        body = await request.json()
    except ValueError:
        raise APIError(
            400, "the body is not JSON; send JSON or multipart/form-data (as client.videos.create does)"
        ) from None
    if not isinstance(body, dict):
        raise APIError(400, f"the body is a JSON {type(body).__name__}; send an object of the job's fields")
    reference = body.pop(REFERENCE, None)
    if isinstance(reference, dict):
        if "image_url" not in reference:
            raise APIError(
                400,
                f"{REFERENCE}: send {{'image_url': 'data:...'}} or an upload; file ids are not kept here",
                REFERENCE,
            )
        reference = reference["image_url"]
    if reference is not None and not isinstance(reference, str):
        raise APIError(400, f"{REFERENCE}: expected a data: URI or an upload", REFERENCE)
    return body, reference


def _mime_kind(mime: str) -> str | None:
    """Whether a media type is an image or a video to the world (None: neither); a GIF is a video, as it may move."""
    if mime.startswith("video/") or mime == "image/gif":
        return "video"
    return "image" if mime.startswith("image/") else None


def _save_input(reference: UploadFile | str, folder: Path, settings: ServerSettings) -> tuple[Path, np.ndarray]:
    """Read the input with the limits checked first, save it in the job's folder, and return its path and frames
    (an image as one frame; a video as frames sampled over it, enough to check the request)."""
    if isinstance(reference, str):
        if reference.lower().startswith("data:"):
            mime = reference[5:].split(",", 1)[0].split(";")[0].lower()
        else:
            mime = mimetypes.guess_type(urlparse(reference).path)[0] or ""
        source = open_url(reference, _mime_kind(mime) or "image", settings, REFERENCE)
    else:
        mime = (reference.content_type or "").lower()
        if mime in ("", "application/octet-stream"):  # a client that did not say: the file's name tells
            mime = mimetypes.guess_type(reference.filename or "")[0] or mime
        if _mime_kind(mime) is None:
            raise APIError(
                400,
                f"{REFERENCE}: an upload of type {mime or 'unknown'}; send an image (PNG, JPEG) or a video (MP4)",
                REFERENCE,
            )
        check_media_bytes(reference.size or 0, settings, REFERENCE)
        source = reference.file
    if _mime_kind(mime) == "image":
        image = read_image(source, settings, REFERENCE)
        path = folder / "input.png"
        image.save(path)
        return path, np.asarray(image)[None]
    data = source.read()
    frames = read_video(io.BytesIO(data), settings, REFERENCE)
    path = folder / f"input{_VIDEO_SUFFIXES.get(mime, '.mp4')}"
    path.write_bytes(data)
    return path, frames


def _size(size: str) -> list[int]:
    """OpenAI's WIDTHxHEIGHT as the spec's [height, width]."""
    width, x, height = size.lower().partition("x")
    sides = [int(side) for side in (height, width) if side.strip().isdigit()]
    if not x or len(sides) != 2 or any(side == 0 or side % 16 for side in sides):
        raise APIError(
            400, f"size={size!r} is impossible; use WIDTHxHEIGHT in multiples of 16, such as '64x64'", "size"
        )
    return sides


def _refused(error: ValueError) -> APIError:
    """A 400 for what the world spec or backend refused; its message starts with the field at fault."""
    message = str(error).splitlines()[0]
    if isinstance(error, SpecError):
        message = message.removeprefix(f"{error.source}: ")
    field = re.match(r"(\w+)=", message)
    param = field.group(1) if field and field.group(1) in VideoCreate.model_fields else None
    return APIError(400, message, param)


def _backend(jobs: JobQueue) -> WorldBackend:
    """The world backend, loading it on first use; a model that cannot load is the server's fault, not the client's."""
    try:
        return jobs.backend()[0]
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        fix = "restart the server with a world model that loads"
        raise APIError(
            503, f"the world model {jobs.model!r} cannot load ({reason}); {fix}", code="model_unavailable"
        ) from None


def _create(
    job_id: str, folder: Path, fields: VideoCreate, reference: UploadFile | str | None, request: Request
) -> VideoJob:
    """Everything that can refuse the request, then the job: input, spec, model defaults, limits."""
    settings: ServerSettings = request.app.state.settings
    jobs = _jobs(request)
    if fields.model is not None:
        check_model(fields.model, settings, world=True)
    if fields.seconds is not None and fields.num_output_frames is not None:
        raise APIError(400, "both seconds and num_output_frames given; send one", "seconds")
    raw = fields.model_dump(exclude_none=True, exclude={"model", "seconds", "size"})
    if fields.size is not None:
        raw["resolution"] = _size(fields.size)
    frames = None
    if reference is not None:
        path, frames = _save_input(reference, folder, settings)
        raw["input_path"] = path.name
    elif raw.get("inference_type") in ("image2world", "video2world"):
        fix = "send input_reference: an image or video upload, or a data: URI"
        raise APIError(400, f"{raw['inference_type']} needs an input; {fix}", REFERENCE)
    try:
        spec = parse_spec(raw, "request", folder, OUTPUT_NAME)
    except SpecError as error:
        raise _refused(error) from None
    backend = _backend(jobs)
    frames_param = "num_output_frames"
    if fields.seconds is not None:
        frames_param, count = "seconds", max(1, round(fields.seconds * (spec.fps or backend.default_fps)))
        check_video_frames(count, settings, frames_param)
        spec = spec.with_overrides(**check_overrides({"num_output_frames": count}, source="seconds"))
    try:
        world_request = build_request(spec, backend, frames)
    except ValueError as error:  # SpecError among them: what this backend cannot do
        raise _refused(error) from None
    check_video_frames(world_request.num_output_frames, settings, frames_param)
    check_pixels(world_request.width, world_request.height, settings, "size")
    try:
        return jobs.submit(job_id, spec, world_request)
    except JobLimitError:
        kept = f"the server already keeps {settings.max_video_jobs} video jobs"
        raise APIError(
            429, f"{kept}; DELETE finished ones first ({LIMITS['jobs'].describe(settings)})", code="limit_exceeded"
        ) from None


@router.post("", response_model=Video)
async def create_video(request: Request) -> Video:
    settings: ServerSettings = request.app.state.settings
    raw, reference = await _fields(request, settings)
    try:
        fields = VideoCreate.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"])
        raise APIError(400, f"{param}={first.get('input')!r}: {first['msg']}", param) from None
    job_id, folder = _jobs(request).new_folder()
    try:
        job = await run_in_threadpool(_create, job_id, folder, fields, reference, request)
    except BaseException:
        _jobs(request).delete(job_id)
        raise
    return Video.of(job)


@router.get("/{video_id}", response_model=Video)
async def retrieve_video(request: Request, video_id: str) -> Video:
    return Video.of(_job(request, video_id))


@router.get("/{video_id}/content", response_class=FileResponse)
async def download_video(request: Request, video_id: str, variant: str = "video") -> FileResponse:
    job = _job(request, video_id)
    if variant != "video":
        raise APIError(400, f"variant={variant!r} is not kept; ask for variant=video (the mp4)", "variant")
    if job.status == "failed":
        raise APIError(
            409, f"video job {job.id} failed ({job.error_message}); it has no video", "video_id", "video_failed"
        )
    if job.status != "completed":
        fix = f"poll GET /v1/videos/{job.id} until its status is completed"
        raise APIError(409, f"video job {job.id} is {job.status}; {fix}", "video_id", "video_not_ready")
    return FileResponse(job.video, media_type="video/mp4", filename=f"{job.id}.mp4")


@router.delete("/{video_id}", response_model=VideoDeleted)
async def delete_video(request: Request, video_id: str) -> VideoDeleted:
    if not _jobs(request).delete(video_id):
        raise _not_found(video_id)
    return VideoDeleted(id=video_id)
