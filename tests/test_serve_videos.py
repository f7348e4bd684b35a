"""World generation as OpenAI-style video jobs, through the official openai client (`client.videos`): a job run to
completion whose mp4 decodes, a blocked prompt, and the refusals of bad input (each an OpenAI error naming the
field or the flag)."""

import io
import json
import time
from pathlib import Path

import av
import openai
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "toyworld_image2world.json"
SPEC = json.loads(EXAMPLE.read_text())
IMAGE = EXAMPLE.parent / SPEC["input_path"]


def _finish(client: openai.OpenAI, video, timeout: float = 120.0):
    """Poll until the job leaves the queue (`client.videos.poll` has no deadline)."""
    deadline = time.monotonic() + timeout
    while video.status in ("queued", "in_progress"):
        assert time.monotonic() < deadline, f"video job still {video.status} after {timeout:.0f}s"
        time.sleep(0.2)
        video = client.videos.retrieve(video.id)
    return video


@pytest.mark.slow
def test_image2world_job_runs_to_completion_and_its_mp4_decodes(served):
    server = served()
    client = server.client()
    fields = {key: SPEC[key] for key in ("inference_type", "seed", "num_output_frames", "fps")}
    with IMAGE.open("rb") as image:
        video = client.videos.create(prompt=SPEC["prompt"], input_reference=image, extra_body=fields)
    assert video.object == "video" and video.status == "queued" and video.id.startswith("video_")
    assert (video.model, video.size, video.seconds) == ("toyworld", "64x64", "1")  # 8 frames at 8 fps

    done = _finish(client, video)
    assert done.status == "completed" and done.progress == 100 and done.error is None
    assert done.completed_at >= done.created_at

    content = client.videos.download_content(video.id)
    assert content.response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(content.read())) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == SPEC["num_output_frames"] and frames[0].shape == (64, 64, 3)

    jobs = server.server.config.app.state.video_jobs
    assert (jobs.root / video.id).is_dir()
    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    assert not (jobs.root / video.id).exists()
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)


@pytest.mark.slow
def test_seconds_and_a_data_uri_input(served):
    import base64

    client = served().client()
    uri = "data:image/png;base64," + base64.b64encode(IMAGE.read_bytes()).decode()
    video = client.videos.create(prompt=SPEC["prompt"], seconds="2", extra_body={"input_reference": uri, "fps": 4})
    assert video.seconds == "2"
    done = _finish(client, video)
    assert done.status == "completed", done.error
    with av.open(io.BytesIO(client.videos.download_content(video.id).read())) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8  # 2 seconds at 4 fps
    client.videos.delete(video.id)


@pytest.mark.slow
def test_blocked_prompt_makes_a_failed_job_with_the_reason(served):
    client = served().client()
    video = _finish(client, client.videos.create(prompt="a scene full of gore"))
    assert video.status == "failed"
    assert video.error.code == "moderation_blocked" and "gore" in video.error.message
    with pytest.raises(openai.ConflictError) as caught:
        client.videos.download_content(video.id)
    assert caught.value.body["code"] == "video_failed" and "gore" in caught.value.body["message"]
    client.videos.delete(video.id)


def _refusal(call, kind=openai.BadRequestError) -> dict:
    with pytest.raises(kind) as caught:
        call()
    return caught.value.body


def test_bad_fields_are_400s_naming_the_field(served):
    client = served().client()
    error = _refusal(lambda: client.videos.create(prompt="a ball", extra_body={"inference_type": "photo2world"}))
    assert "inference_type='photo2world' is unknown" in error["message"] and error["param"] == "inference_type"
    error = _refusal(lambda: client.videos.create(prompt="a ball", extra_body={"inference_type": "image2world"}))
    assert "image2world needs an input" in error["message"] and error["param"] == "input_reference"
    error = _refusal(lambda: client.videos.create(prompt="a ball", extra_body={"seed": "tomorrow"}))
    assert error["param"] == "seed"
    error = _refusal(lambda: client.videos.create(prompt="a ball", size="65x64"))
    assert error["param"] == "size" and "multiples of 16" in error["message"]
    error = _refusal(lambda: client.videos.create(prompt="   "))
    assert "prompt" in error["message"]
    error = _refusal(lambda: client.videos.create(prompt="a ball", model="sora-2"), openai.NotFoundError)
    assert error["code"] == "model_not_found" and "toyworld" in error["message"]


def test_bad_inputs_are_400s(served):
    client = served().client()
    text = ("notes.txt", b"not a picture", "text/plain")
    error = _refusal(lambda: client.videos.create(prompt="a ball", input_reference=text))
    assert error["param"] == "input_reference" and "text/plain" in error["message"]
    fake = ("scene.png", b"not a picture", "image/png")
    assert _refusal(lambda: client.videos.create(prompt="a ball", input_reference=fake))["param"] == "input_reference"
    bad = {"input_reference": "data:image/png;base64,@@not-base64@@"}
    assert "base64" in _refusal(lambda: client.videos.create(prompt="a ball", extra_body=bad))["message"]
    remote = {"input_reference": {"image_url": "https://example.com/scene.png"}}
    assert "fetches no URLs" in _refusal(lambda: client.videos.create(prompt="a ball", extra_body=remote))["message"]


def test_oversize_uploads_are_413s_naming_the_flag(served):
    client = served(max_media_mb=0.01, max_request_mb=0.05).client()
    for size, flag in [(20_000, "--max-media-mb"), (100_000, "--max-request-mb")]:
        with pytest.raises(openai.APIStatusError) as caught:
            client.videos.create(prompt="a ball", input_reference=("scene.png", b"\0" * size, "image/png"))
        assert caught.value.status_code == 413
        assert flag in caught.value.body["message"] and caught.value.body["code"] == "limit_exceeded"


def test_unknown_ids_are_404s(served):
    client = served().client()
    for call in (client.videos.retrieve, client.videos.download_content, client.videos.delete):
        error = _refusal(lambda call=call: call("video_nope"), openai.NotFoundError)
        assert error["param"] == "video_id" and "video_nope" in error["message"]
    error = _refusal(lambda: client.videos.delete("video_..; rm -rf ~"), openai.NotFoundError)
    assert error["code"] == "not_found"
