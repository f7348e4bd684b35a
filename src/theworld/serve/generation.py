"""One `generate` for a batch of chat requests, each answered exactly as it would be alone.

Every request arrives tokenised on its own (`ChatJob.inputs`); here the rows are left-padded into one batch, as the
processor pads a batch, and the world of each request's images comes from `WorldCache`, imagined per image and so
independent of the batch. A stopping criterion watches every step: it hands each row's new text to its request
(streams), ends a row at its own max_tokens, stop string or end of turn, and ends the row of a client that left;
`generate` stops as soon as every row has ended.
"""

import asyncio
import threading
from dataclasses import dataclass, field

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from theworld.modeling.modeling_theworld import TheWorld
from theworld.serve.world_cache import WorldCache

__all__ = ["ChatJob", "Sampling", "run_batch"]

_ROW_KEYS = {"input_ids", "attention_mask", "token_type_ids"}  # one row per request: left-padded
_AUDIO_KEYS = {"input_features", "input_features_mask"}  # one row per recording: right-padded in time


@dataclass(frozen=True)
class Sampling:
    do_sample: bool
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None

    def batch_key(self, job_id: int) -> tuple:
        """Requests batch together only when one `generate` call can draw for all of them as for each alone."""
        if not self.do_sample:
            return ("greedy",)
        if self.seed is not None:
            return ("seeded", job_id)  # a seeded draw repeats only when nothing else shares the generator
        return ("sampled", self.temperature, self.top_p)

    def generate_kwargs(self) -> dict:
        if not self.do_sample:
            return {"do_sample": False}
        chosen = {"temperature": self.temperature, "top_p": self.top_p}
        return {"do_sample": True, **{key: value for key, value in chosen.items() if value is not None}}


@dataclass(eq=False)
class ChatJob:
    """One chat request on its way through the batcher; the model thread reports to it through `events`:
    ("delta", choice, text), ("world", frames), ("finish", choice, reason, tokens, text), ("audio", choice, text),
    ("done",) or ("error", exception)."""

    inputs: dict
    clips: list[torch.Tensor | None]
    steps: int | None
    sampling: Sampling
    max_tokens: int
    n: int
    stop: list[str]
    stream: bool
    want_frames: bool
    want_audio: bool
    loop: asyncio.AbstractEventLoop
    positions: tuple[int, int] = (0, 0)  # (prompt tokens, world tokens): what a batch must fit in the context
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def batch_key(self) -> tuple:
        return self.sampling.batch_key(id(self))

    def emit(self, *event) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop is gone: the server is shutting down
            self.cancelled.set()


class _Choice:
    """One row of the batch: one choice of one request, its tokens and text so far."""

    def __init__(self, job: ChatJob, index: int, decode, end_ids: set[int], ended):
        self.job, self.index, self.decode, self.end_ids, self.ended = job, index, decode, end_ids, ended
        self.tokens: list[int] = []
        self.count, self.text, self.sent, self.finish = 0, "", 0, None

    def push(self, token: int) -> bool:
        """Take the row's next token; True once the row has ended."""
        if self.job.cancelled.is_set():
            self.finish = "cancelled"
            self.ended(self)
            return True
        self.count += 1
        if token in self.end_ids:
            self.finish = "stop"
        else:
            self.tokens.append(token)
            self.text = self.decode(self.tokens)
            cut = min(
                (i for i in (self.text.find(s, max(0, self.sent - len(s))) for s in self.job.stop) if i >= 0),
                default=-1,
            )
            if cut >= 0:
                self.text, self.finish = self.text[:cut], "stop"
        if self.finish is None and self.count >= self.job.max_tokens:
            self.finish = "length"
        self._send()
        if self.finish is not None:
            self._finished()
        return self.finish is not None

    def end(self) -> None:
        if self.finish is None:
            self.finish = "length"
            self._send()
            self._finished()

    def _finished(self) -> None:
        self.job.emit("finish", self.index, self.finish, self.count, self.text)
        self.ended(self)

    def _send(self) -> None:
        """Stream the text no later token can change: not a half-decoded character, not a stop string's start."""
        if not self.job.stream:
            return
        ready = len(self.text)
        if self.finish is None:
            ready = len(self.text.rstrip("\ufffd"))
            held = [k for s in self.job.stop for k in range(1, len(s)) if self.text[:ready].endswith(s[:k])]
            ready -= max(held, default=0)
        if ready > self.sent:
            self.job.emit("delta", self.index, self.text[self.sent : ready])
            self.sent = ready


class _Watcher(StoppingCriteria):
    def __init__(self, choices: list[_Choice]):
        self.choices = choices

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        tokens = input_ids[:, -1].tolist()
        ended = [c.finish is not None or c.push(token) for c, token in zip(self.choices, tokens, strict=True)]
        return torch.tensor(ended, dtype=torch.bool, device=input_ids.device)


def collate(rows: list[dict], pad_id: int) -> dict:
    """Per-request inputs (batch of 1) -> one batch: token rows left-padded, images and recordings in order."""
    keys = {key for row in rows for key in row}
    length = max(row["input_ids"].shape[1] for row in rows)
    frames = max((row["input_features"].shape[1] for row in rows if "input_features" in row), default=0)
    batch = {}
    for key in keys:
        present = [row[key] for row in rows if key in row]
        if key in _ROW_KEYS:
            value = pad_id if key == "input_ids" else 0
            present = [torch.nn.functional.pad(t, (length - t.shape[1], 0), value=value) for t in present]
        elif key in _AUDIO_KEYS:
            present = [torch.nn.functional.pad(t, (0, 0) * (t.dim() - 2) + (0, frames - t.shape[1])) for t in present]
        batch[key] = torch.cat(present)
    return batch


@torch.no_grad()
def run_batch(model: TheWorld, jobs: list[ChatJob], world: WorldCache | None, decode, speak) -> None:
    """Answer `jobs` with one `generate`; `decode(ids) -> text`, `speak(text) -> wav bytes` for spoken answers.
    A request hears "done" as soon as its last row ends (a spoken one once its answers are spoken), not when the
    batch does."""
    end_ids = set(_as_list(model.generation_config.eos_token_id))
    open_rows = {id(job): job.n for job in jobs}

    def ended(choice: _Choice) -> None:
        open_rows[id(choice.job)] -= 1
        if not open_rows[id(choice.job)] and not choice.job.want_audio:
            choice.job.emit("done")

    rows = [job for job in jobs for _ in range(job.n)]
    choices = [_Choice(job, i, decode, end_ids, ended) for job in jobs for i in range(job.n)]
    inputs = collate([job.inputs for job in rows], model.generation_config.pad_token_id or 0)
    inputs = {name: value.to(model.device) for name, value in inputs.items()}  # --device
    steps = next((job.steps for job in jobs if job.steps is not None), None)
    latents = {}
    if "pixel_values" in inputs and steps is not None:
        latents = {id(job): world.latents(job, steps) for job in jobs if job.steps is not None}
    for job in jobs:
        if job.want_frames:
            job.emit("world", world.frames(latents[id(job)]) if id(job) in latents else [])
    world_kwargs = {"num_world_steps": steps} if "pixel_values" in inputs else {}
    if latents:
        world_kwargs["world_latents"] = torch.cat([latents[id(job)] for job in rows if id(job) in latents])
    if jobs[0].sampling.seed is not None and jobs[0].sampling.do_sample:
        torch.manual_seed(jobs[0].sampling.seed)
    model.generate(
        **inputs,
        **world_kwargs,
        **jobs[0].sampling.generate_kwargs(),
        max_new_tokens=max(job.max_tokens for job in jobs),
        stopping_criteria=StoppingCriteriaList([_Watcher(choices)]),
    )
    for choice in choices:
        choice.end()
    for job in jobs:
        if job.want_audio:
            if not job.cancelled.is_set():
                for choice in choices:
                    if choice.job is job:
                        job.emit("audio", choice.index, speak(choice.text))
            job.emit("done")


def _as_list(ids) -> list[int]:
    return [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
