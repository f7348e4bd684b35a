"""`theworld eval`: the held-out ToyWorld test split, per question family, with and without the world."""

import time
from dataclasses import dataclass, field

import numpy as np
from transformers import Gemma3Processor

from theworld.evaluation.answers import answer_questions
from theworld.evaluation.world_data import fact_data, reading_data, simulate_clips
from theworld.evaluation.world_parts import fact_accuracy, reading_errors, reconstruction_psnr, rollout_errors
from theworld.media import to_model_range
from theworld.modeling.modeling_theworld import TheWorld
from theworld.toyworld import make_examples

__all__ = ["EvalReport", "evaluate"]


@dataclass
class EvalReport:
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # mode -> family -> accuracy
    seconds_per_answer: dict[str, float] = field(default_factory=dict)
    num_questions: dict[str, int] = field(default_factory=dict)
    vae_psnr_db: float = float("nan")
    rollout: dict[str, list[float]] = field(default_factory=dict)
    # With an object reader: its errors on the current frame and each imagined one (`world_parts.reading_errors`).
    object_reading: dict[str, list[float]] = field(default_factory=dict)
    # With fact heads: the accuracy of each decoded fact (`world_parts.fact_accuracy`).
    object_facts: dict[str, float] = field(default_factory=dict)


def evaluate(
    model: TheWorld, processor: Gemma3Processor, num_clips: int = 200, questions_per_clip: int = 4, batch_size: int = 32
) -> EvalReport:
    """Accuracy per family for k = max world steps, k = 0, and the world switched off; VAE PSNR; rollout error."""
    examples = make_examples("test", num_clips, questions_per_clip=questions_per_clip)
    images = [e.image for e in examples]
    questions = [e.question for e in examples]
    k = model.config.num_world_steps or model.config.max_world_steps
    modes = {
        f"num_world_steps={k}": {"num_world_steps": k},
        "num_world_steps=0": {"num_world_steps": 0},
        "enable_world=False": {"skip_world_tokens": True},
    }
    report = EvalReport()
    for mode, kwargs in modes.items():
        started = time.perf_counter()
        predictions = answer_questions(model, processor, images, questions, batch_size, **kwargs)
        report.seconds_per_answer[mode] = (time.perf_counter() - started) / len(examples)
        correct: dict[str, list[bool]] = {}
        for example, prediction in zip(examples, predictions, strict=True):
            hit = prediction == example.answer
            correct.setdefault(example.family, []).append(hit)
            correct.setdefault(example.kind, []).append(hit)
            correct.setdefault("all", []).append(hit)
        report.accuracy[mode] = {name: float(np.mean(hits)) for name, hits in correct.items()}
        report.num_questions = {name: len(hits) for name, hits in correct.items()}
    clips = to_model_range(simulate_clips("test", min(num_clips, 64)))
    report.vae_psnr_db = reconstruction_psnr(model.world_encoder.vae, clips.flatten(0, 1))
    report.rollout = rollout_errors(model.dynamics, model.world_encoder, clips, rollout_steps=k)
    if model.config.world_objects is not None:
        test_clips = reading_data(model, "test", min(num_clips, 64))
        report.object_reading = reading_errors(model.object_reader, model.dynamics, *test_clips, rollout_steps=k)
        if model.object_reader.kind_token_ids is not None:
            report.object_facts = fact_accuracy(model.object_reader, fact_data(model, "test", min(num_clips, 64)))
    return report
