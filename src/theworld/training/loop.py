"""The optimisation loop every training stage shares: AdamW, a learning-rate schedule, gradient clipping, progress.

The schedule is one-cycle unless a stage passes its own multiplier (`warmup_cosine`, for the autoregressive world
model); clipping is at norm 1 unless a stage turns it off.
"""

import math
from collections.abc import Callable, Iterable

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from theworld.training.parallel import average_gradients, held_shards

__all__ = ["optimize", "warmup_cosine"]


def warmup_cosine(steps: int, warmup: int) -> Callable[[int], float]:
    """A learning-rate multiplier for `optimize(schedule=...)`: linear warm-up over `warmup` steps, then cosine to 0."""

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return multiplier


def optimize(
    parameters: Iterable[torch.nn.Parameter],
    steps: int,
    lr: float,
    step_loss: Callable[[], tuple[torch.Tensor, float]],
    description: str,
    weight_decay: float = 0.0,
    warmup_fraction: float = 0.1,
    shards: int | None = None,
    schedule: Callable[[int], float] | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    clip_norm: float | None = 1.0,
) -> float:
    """Run `steps` updates of `step_loss() -> (loss to minimise, figure to report)`; return the last figure.

    The learning rate follows one cycle (warm-up over `warmup_fraction` of the steps), or `lr * schedule(step)`
    when `schedule` is given. Gradients are clipped to `clip_norm` (None: not clipped).

    With `shards`, every update averages `step_loss(shard)` over that many data shards: those this process holds
    one after another, the others' gradients from the rest of its process group (`training.parallel`)."""
    parameters = list(parameters)
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, betas=betas)
    if schedule is not None:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    else:
        if warmup_fraction * steps == 1:  # OneCycleLR divides by zero when warm-up is exactly one step
            warmup_fraction /= 2
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=max(steps, 1), pct_start=warmup_fraction
        )
    reported = float("nan")
    with _progress() as progress:
        task = progress.add_task(description, total=steps, figure="")
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            if shards is None:
                loss, reported = step_loss()
                loss.backward()
            else:
                reported = 0.0
                for shard in held_shards(shards):
                    loss, figure = step_loss(shard)
                    (loss / shards).backward()  # gradients summed over shards: the same sum in any order for 2
                    reported += figure / shards
                reported = average_gradients(parameters, reported)
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters, clip_norm)
            optimizer.step()
            scheduler.step()
            progress.update(task, advance=1, figure=f"{reported:.4f}")
    return reported


def _progress() -> Progress:
    """A bar on stderr that shows the latest figure and disappears when the loop ends."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[figure]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
