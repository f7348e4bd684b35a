"""Video jobs: a queue with one background worker in front of `theworld world`'s runner.

The world backend and guardrail load on first use (a chat-only server never pays for them): the first POST needs
the backend's defaults to answer with the job's frames, fps and size. The worker runs each job through
`run_sample`, the function `theworld world` runs, so a job is a sample: same checks, same files, same guardrail.
One worker, because a world model fills the machine on its own. Every job's files live in one temporary folder
that `close()` removes.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from theworld.world.backends import WorldBackend, WorldRequest, get_backend
from theworld.world.guardrail import Guardrail, load_guardrail
from theworld.world.runner import run_sample
from theworld.world.spec import WorldSpec

__all__ = ["JobLimitError", "JobQueue", "VideoJob"]

logger = logging.getLogger(__name__)

OUTPUT_NAME = "video"  # the runner writes <job folder>/video/video.mp4
_JOB_ID = re.compile(r"video_[0-9a-f]{32}")


class JobLimitError(RuntimeError):
    """The server already keeps `max_jobs` jobs."""


@dataclass
class VideoJob:
    """One job's state; `JobQueue.get` hands out copies, so a reader never sees one half-updated."""

    id: str
    spec: WorldSpec
    model: str
    folder: Path
    created_at: int
    num_frames: int
    fps: int
    size: tuple[int, int]  # (height, width) of the video
    status: str = "queued"  # queued | in_progress | completed | failed
    progress: int = 0
    completed_at: int | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def video(self) -> Path:
        return self.folder / OUTPUT_NAME / f"{OUTPUT_NAME}.mp4"


class JobQueue:
    """Jobs by id, run one at a time by a background thread; `close()` stops it and removes every file."""

    def __init__(self, model: str, max_jobs: int, disable_guardrail: bool = False) -> None:
        self.model = model
        self.max_jobs = max_jobs
        self.disable_guardrail = disable_guardrail
        self.root = Path(tempfile.mkdtemp(prefix="theworld-serve-videos-"))
        self._jobs: dict[str, VideoJob] = {}
        self._lock = threading.Lock()
        self._pending: queue.Queue[str | None] = queue.Queue()
        self._loaded: tuple[WorldBackend, Guardrail] | None = None
        self._loading = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="theworld-video-jobs", daemon=True)
        self._worker.start()

    def backend(self) -> tuple[WorldBackend, Guardrail]:
        """The world backend and guardrail, loaded on the first call (which blocks for as long as that takes)."""
        with self._loading:
            if self._loaded is None:
                guardrail = load_guardrail(disabled=self.disable_guardrail)
                self._loaded = get_backend(self.model, guardrail=guardrail), guardrail
            return self._loaded

    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its empty folder, for the request's input before its spec is validated."""
        job_id = f"video_{uuid.uuid4().hex}"
        folder = self.root / job_id
        folder.mkdir()
        return job_id, folder

    def submit(self, job_id: str, spec: WorldSpec, request: WorldRequest) -> VideoJob:
        """Queue the job whose folder `new_folder` made; `request` is `spec` resolved by `build_request`, for the
        frames, fps and size the job reports. `JobLimitError` when `max_jobs` are already kept."""
        job = VideoJob(
            id=job_id,
            spec=spec,
            model=self.model,
            folder=self.root / job_id,
            created_at=int(time.time()),
            num_frames=request.num_output_frames,
            fps=request.fps,
            size=(request.height, request.width),
        )
        with self._lock:
            if len(self._jobs) >= self.max_jobs:
                raise JobLimitError(f"{len(self._jobs)} video jobs kept, the most this queue keeps")
            self._jobs[job_id] = job
            snapshot = dataclasses.replace(job)
        self._pending.put(job_id)
        return snapshot

    def get(self, job_id: str) -> VideoJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return dataclasses.replace(job) if job else None

    def delete(self, job_id: str) -> bool:
        """Forget the job and remove its files (a running one's go when it ends); False for an unknown id."""
        if not _JOB_ID.fullmatch(job_id):  # ids come from URLs: never let one name a path
            return False
        with self._lock:
            job = self._jobs.pop(job_id, None)
            running = job is not None and job.status == "in_progress"
        if not running:
            shutil.rmtree(self.root / job_id, ignore_errors=True)
        return job is not None

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker after its current job and remove every job's files."""
        self._pending.put(None)
        self._worker.join(timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    def _work(self) -> None:
        while (job_id := self._pending.get()) is not None:
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None:  # deleted while queued
                    continue
                job.status = "in_progress"
            try:
                self._run(job)
            except Exception as err:  # the worker outlives any one job
                logger.exception("video job %s failed", job_id)
                self._finish(job, "failed", ("server_error", f"{type(err).__name__}: {err}".splitlines()[0]))

    def _run(self, job: VideoJob) -> None:
        def progress(done: int, total: int) -> None:
            with self._lock:
                job.progress = min(99, int(100 * done / max(total, 1)))

        backend, guardrail = self.backend()
        result = run_sample(job.spec, OUTPUT_NAME, 0, backend, guardrail, job.folder, progress=progress)
        if result.status == "ok":
            self._finish(job, "completed")
        else:
            code = "moderation_blocked" if result.status == "blocked" else "generation_failed"
            self._finish(job, "failed", (code, result.message))

    def _finish(self, job: VideoJob, status: str, error: tuple[str, str] | None = None) -> None:
        with self._lock:
            job.status, job.completed_at = status, int(time.time())
            job.progress = 100 if status == "completed" else job.progress
            job.error_code, job.error_message = error or (None, None)
            deleted = job.id not in self._jobs
        if deleted:  # DELETE came while it ran: its files go now
            shutil.rmtree(job.folder, ignore_errors=True)
