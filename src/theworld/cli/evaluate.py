"""`theworld eval`: accuracy per question family on the held-out ToyWorld test split, and the world's quality."""

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from theworld.cli.common import console, load_model, set_threads, user_errors

__all__ = ["evaluate"]


def evaluate(
    model: str = typer.Option("theworld-tiny", help="Checkpoint folder, Hub id, or 'theworld-tiny'."),
    clips: int = typer.Option(200, min=1, help="Test-split clips to draw questions from."),
    questions_per_clip: int = typer.Option(4, min=1),
    batch_size: int = typer.Option(32, min=1),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the report as JSON here."),
    threads: int | None = typer.Option(None, help="PyTorch CPU threads."),
) -> None:
    """Evaluate a model on ToyWorld's test split, with the world on (k steps, 0 steps) and off."""
    from theworld.training.evaluate import evaluate as run_evaluation

    set_threads(threads)
    with user_errors():
        world = load_model(model)
        report = run_evaluation(world, world.processor, clips, questions_per_clip, batch_size)
    table = Table(title=f"ToyWorld test split ({report.num_questions['all']} questions)")
    table.add_column("mode")
    families = ["static", "temporal", "all"]
    for family in families:
        table.add_column(f"{family} acc", justify="right")
    table.add_column("ms / answer", justify="right")
    for mode, accuracy in report.accuracy.items():
        cells = [f"{100 * accuracy.get(f, float('nan')):.1f}%" for f in families]
        table.add_row(mode, *cells, f"{1000 * report.seconds_per_answer[mode]:.1f}")
    console.print(table)
    kinds = Table(title="accuracy per question kind")
    kinds.add_column("kind")
    for mode in report.accuracy:
        kinds.add_column(mode, justify="right")
    for kind in sorted(k for k in report.num_questions if k not in families + ["static", "temporal"]):
        kinds.add_row(kind, *[f"{100 * acc[kind]:.1f}%" for acc in report.accuracy.values()])
    console.print(kinds)
    console.print(f"VAE reconstruction PSNR: {report.vae_psnr_db:.2f} dB")
    rollout = Table(title="rollout MSE per imagined step (lower is better)")
    rollout.add_column("space / predictor")
    for step in range(len(report.rollout["latent_model"])):
        rollout.add_column(f"step {step + 1}", justify="right")
    for name, errors in report.rollout.items():
        rollout.add_row(name, *[f"{e:.4f}" for e in errors])
    console.print(rollout)
    if json_path is not None:
        json_path.write_text(json.dumps(asdict(report), indent=2))
