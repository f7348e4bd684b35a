"""The model's one thread, and the queue in front of it.

Chat requests that arrive together are answered by one `generate`: once a request is taken, the batcher takes
more that can share the call (`ChatJob.batch_key`) until none has come for `--batch-wait-ms`, up to
`--max-batch-size` rows (a request with n choices takes n). Other model work (speech, transcription) runs on the
same thread, one at a time, so the model is never used from two threads at once. A request whose client left
before its turn is dropped.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from theworld.serve.generation import ChatJob

__all__ = ["Batcher"]

logger = logging.getLogger("theworld.serve")


class _Task:
    def __init__(self, work: Callable[[], object]):
        self.work, self.future = work, Future()


class Batcher:
    def __init__(
        self, run_batch: Callable[[list[ChatJob]], None], max_batch_size: int, wait_seconds: float, context: int
    ):
        self.run_batch, self.max_batch_size, self.wait_seconds = run_batch, max_batch_size, wait_seconds
        self.context = context
        self._queue: deque[ChatJob | _Task] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="theworld-model", daemon=True)
        self.stats = {"batches": 0, "largest_batch": 0, "last_batch": 0, "active_rows": 0}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        self._thread.join(timeout=30)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, job: ChatJob) -> None:
        with self._ready:
            self._queue.append(job)
            self._ready.notify_all()

    def call(self, work: Callable[[], object]) -> Future:
        """Run `work` on the model thread; its result (or exception) comes through the future."""
        task = _Task(work)
        with self._ready:
            self._queue.append(task)
            self._ready.notify_all()
        return task.future

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return
                first = self._queue.popleft()
            if isinstance(first, _Task):
                self._run_task(first)
            elif not first.cancelled.is_set():
                self._answer(self._collect(first))

    def _collect(self, first: ChatJob) -> list[ChatJob]:
        """`first` and the requests that join it: the batch closes once none has come for the wait (or it is
        full, or it has waited ten times the wait in all). Under load the clients of the last batch come back one
        by one as their answers end, and this waits for them; a lone client (the last batch was one row and
        nothing else is queued) waits for nobody."""
        batch, rows = [first], first.n
        now = time.monotonic()
        alone = self.stats["last_batch"] <= 1 and not self._queue
        deadline, last_call = now + (0 if alone else self.wait_seconds), now + 10 * self.wait_seconds
        with self._ready:
            while rows < self.max_batch_size:
                job = next((job for job in self._queue if self._fits(job, batch, rows)), None)
                if job is not None:
                    self._queue.remove(job)
                    if not job.cancelled.is_set():
                        batch.append(job)
                        rows += job.n
                        deadline = min(time.monotonic() + self.wait_seconds, last_call)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping:
                    break
                self._ready.wait(remaining)
        return batch

    def _fits(self, job: object, batch: list[ChatJob], rows: int) -> bool:
        """Same decoding, same world steps (or no image), room for its rows, and the padded batch (the longest
        prompt, the most world tokens, the largest max_tokens) still inside the context."""
        if not isinstance(job, ChatJob) or job.batch_key != batch[0].batch_key or rows + job.n > self.max_batch_size:
            return False
        steps = {other.steps for other in batch if other.steps is not None}
        if job.steps is not None and steps and steps != {job.steps}:
            return False
        joined = [*batch, job]
        longest = max(other.positions[0] for other in joined) + max(other.positions[1] for other in joined)
        return longest + max(other.max_tokens for other in joined) <= self.context

    def _answer(self, batch: list[ChatJob]) -> None:
        rows = sum(job.n for job in batch)
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], rows)
        self.stats["last_batch"] = rows
        self.stats["active_rows"] = rows
        try:
            self.run_batch(batch)
        except Exception as error:  # noqa: BLE001 - every request of the batch hears of it
            if not isinstance(error, ValueError):
                logger.exception("generate failed")
            for job in batch:
                job.emit("error", error)
        finally:
            self.stats["active_rows"] = 0

    def _run_task(self, task: _Task) -> None:
        try:
            task.future.set_result(task.work())
        except Exception as error:  # noqa: BLE001 - handed to the request that asked
            task.future.set_exception(error)
