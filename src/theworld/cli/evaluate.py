"""`theworld eval`: accuracy per question family on the held-out ToyWorld test split, and the world's quality."""

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from theworld.cli.common import console, fail, load_model, set_threads, user_errors

__all__ = ["evaluate"]


def evaluate(
    checkpoints: list[str] = typer.Option(
        ["theworld-tiny"],
        "--model",
        help="Checkpoint folder, Hub id, or 'theworld-tiny'. Repeat it to compare models on the same questions.",
    ),
    clips: int = typer.Option(200, min=1, help="Test-split clips to draw questions from."),
    questions_per_clip: int = typer.Option(4, min=1),
    world_steps: str | None = typer.Option(
        None,
        help="Comma-separated world steps to ask in, e.g. 0,1,2,3,4 (default: the model's own, then 0); the world "
        "switched off is always asked too.",
    ),
    batch_size: int = typer.Option(32, min=1),
    speech: bool = typer.Option(False, help="Also measure speech: spoken vs typed answers, and the round trip."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the report as JSON here."),
    threads: int | None = typer.Option(None, help="PyTorch CPU threads."),
) -> None:
    """Evaluate a model on ToyWorld's test split, with the world on (k steps, 0 steps) and off. With several
    --model, each in its own first mode against the one before it: the difference with its paired 95% interval."""
    from theworld.evaluation.toyworld_qa import evaluate as run_evaluation

    steps = _world_steps(world_steps)
    if len(set(checkpoints)) != len(checkpoints):
        fail("the same --model is given twice; name each model once")
    set_threads(threads)
    reports, speech_reports = {}, {}
    with user_errors():
        for checkpoint in checkpoints:
            model = load_model(checkpoint)
            reports[checkpoint] = run_evaluation(model, model.processor, clips, questions_per_clip, batch_size, steps)
            speech_reports[checkpoint] = _speech_report(model, clips, questions_per_clip) if speech else None
    for checkpoint, report in reports.items():
        _print_report(checkpoint if len(reports) > 1 else None, report, speech_reports[checkpoint])
    if len(reports) > 1:
        from theworld.cli.comparison_table import compare_models, print_comparison  # torch: not for --help

        comparison = compare_models(reports)
        print_comparison(reports, comparison)
    if json_path is None:
        return
    if len(reports) == 1:
        ((name, report),) = reports.items()
        json_path.write_text(json.dumps({**asdict(report), "speech": speech_reports[name]}, indent=2))
    else:
        models = {name: {**asdict(r), "speech": speech_reports[name]} for name, r in reports.items()}
        json_path.write_text(json.dumps({"models": models, "comparison": comparison}, indent=2))


def _world_steps(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        steps = [int(part) for part in text.split(",")]
    except ValueError:
        fail(f"--world-steps {text!r} is not a comma-separated list of whole numbers; e.g. --world-steps 0,1,2,3,4")
    if any(k < 0 for k in steps) or len(set(steps)) != len(steps):
        fail(f"--world-steps {text!r} must list distinct numbers of steps, 0 or more; e.g. --world-steps 0,4")
    return steps


def _print_report(name: str | None, report, speech_report: dict | None) -> None:
    title = f"{name}: " if name else ""
    table = Table(title=f"{title}ToyWorld test split ({report.num_questions['all']} questions)")
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
    if report.world_parts_measured:
        _print_world_parts(report)
    if speech_report is not None:
        _print_speech(speech_report)


def _print_world_parts(report) -> None:
    console.print(f"VAE reconstruction PSNR: {report.vae_psnr_db:.2f} dB")
    if report.rollout:
        rollout = Table(title="rollout MSE per imagined step (lower is better)")
        rollout.add_column("space / predictor")
        for step in range(len(report.rollout["latent_model"])):
            rollout.add_column(f"step {step + 1}", justify="right")
        for name, errors in report.rollout.items():
            rollout.add_row(name, *[f"{e:.4f}" for e in errors])
        console.print(rollout)
    if report.object_reading:
        reading = Table(title="object reader on the test clips: the current frame, then each imagined one")
        reading.add_column("measure")
        frames = len(report.object_reading["position_error_px"])
        for step in range(frames):
            reading.add_column("now" if step == 0 else f"step {step}", justify="right")
        reading.add_row("position error (px)", *[f"{e:.2f}" for e in report.object_reading["position_error_px"]])
        reading.add_row("presence right", *[f"{100 * a:.1f}%" for a in report.object_reading["presence_accuracy"]])
        console.print(reading)
    if report.object_facts:
        facts = Table(title="object reader's facts on the test clips (over every imagined step), where clear-cut")
        for name in report.object_facts:
            facts.add_column(name, justify="right")
        facts.add_row(*[f"{100 * a:.1f}%" for a in report.object_facts.values()])
        console.print(facts)


def _speech_report(model, clips: int, questions_per_clip: int) -> dict:
    from theworld.evaluation.speech import evaluate_speech
    from theworld.omni.talker import Speaker

    if model.config.audio_config is None:
        raise ValueError(
            "This model has no audio encoder; --speech needs a model trained with `theworld train hearing`"
        )
    speaker = Speaker.from_pretrained(Path(model.name_or_path))
    return evaluate_speech(model, model.processor, speaker, clips, questions_per_clip)


def _print_speech(report: dict) -> None:
    table = Table(title=f"speech in: {report['questions']} test questions, spoken by espeak-ng")
    columns = (
        "voice",
        "agreement with typed",
        "spoken accuracy",
        "question transcribed exactly",
        "word errors",
        "content words (ear alone)",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for voice in ("training_voices", "unseen_voice"):
        row = report[voice]
        table.add_row(
            voice.replace("_", " "),
            *[
                f"{100 * row[key]:.1f}%"
                for key in (
                    "agreement_with_typed",
                    "spoken_accuracy",
                    "question_transcription_exact",
                    "question_word_error_rate",
                    "ear_alone_content_words_right",
                )
            ],
        )
    console.print(table)
    console.print(f"typed accuracy on the same questions: {100 * report['typed_accuracy']:.1f}%")
    trip = report["round_trip"]
    console.print(
        f"speech out round trip: {100 * trip['recognised']:.1f}% of the {trip['answers']} answers recognised "
        f"(espeak-ng's own recordings: {100 * trip['espeak_recognised']:.1f}%)"
    )
