"""The optimisation loop every recipe shares: AdamW, one-cycle learning rate, gradient clipping, progress."""

from collections.abc import Callable, Iterable

import torch
from tqdm.auto import tqdm

from theworld.training.parallel import average_gradients, held_shards

__all__ = ["optimize"]


def optimize(
    parameters: Iterable[torch.nn.Parameter],
    steps: int,
    lr: float,
    step_loss: Callable[[], tuple[torch.Tensor, float]],
    description: str,
    weight_decay: float = 0.0,
    warmup_fraction: float = 0.1,
    shards: int | None = None,
) -> float:
    """Run `steps` updates of `step_loss() -> (loss to minimise, figure to report)`; return the last figure.

    With `shards`, every update averages `step_loss(shard)` over that many data shards: those this process holds
    one after another, the others' gradients from the rest of its process group (`training.parallel`)."""
    parameters = list(parameters)
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    if warmup_fraction * steps == 1:  # OneCycleLR divides by zero when warm-up is exactly one step
        warmup_fraction /= 2
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=max(steps, 1), pct_start=warmup_fraction
    )
    reported = float("nan")
    progress = tqdm(range(steps), desc=description, leave=False)
    for _ in progress:
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
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        progress.set_postfix({description: f"{reported:.4f}"})
    return reported
