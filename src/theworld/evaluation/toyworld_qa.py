"""`theworld eval`: the held-out ToyWorld test split, per question family, with and without the world."""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from transformers import Gemma3Processor

from theworld.evaluation.answers import answer_questions
from theworld.evaluation.world_data import fact_data, reading_data, simulate_clips
from theworld.evaluation.world_parts import fact_accuracy, reading_errors, reconstruction_psnr, rollout_errors
from theworld.media import to_model_range
from theworld.modeling.modeling_theworld import TheWorld
from theworld.toyworld import make_examples

__all__ = ["EvalReport", "answer_modes", "evaluate"]


@dataclass
class EvalReport:
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # mode -> family -> accuracy
    seconds_per_answer: dict[str, float] = field(default_factory=dict)
    num_questions: dict[str, int] = field(default_factory=dict)
    # Every question's kind and family, and per mode whether each was answered right: what paired comparisons
    # between modes or models (`comparison`) need.
    kinds: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    hits: dict[str, list[bool]] = field(default_factory=dict)
    vae_psnr_db: float = float("nan")
    rollout: dict[str, list[float]] = field(default_factory=dict)
    # With an object reader: its errors on the current frame and each imagined one (`world_parts.reading_errors`).
    object_reading: dict[str, list[float]] = field(default_factory=dict)
    # With fact heads: the accuracy of each decoded fact (`world_parts.fact_accuracy`).
    object_facts: dict[str, float] = field(default_factory=dict)

    @property
    def world_parts_measured(self) -> bool:
        """Whether the model had a world whose parts were measured (a model without one has answers only)."""
        return not math.isnan(self.vae_psnr_db)


def answer_modes(model: TheWorld, world_steps: Sequence[int] | None = None) -> dict[str, dict]:
    """The modes a model is asked in, its own first: k world steps (its `num_world_steps`, or each of
    `world_steps`), then k = 0, then the world switched off. A model without a world has the last only."""
    off = {"enable_world=False": {"skip_world_tokens": True}}
    if not model.config.enable_world:
        return off
    if world_steps is None:
        k = model.config.num_world_steps
        world_steps = [k, 0] if k else [0]
    too_many = [k for k in world_steps if k > model.config.max_world_steps]
    if too_many:
        raise ValueError(
            f"world steps {too_many} exceed this model's max_world_steps={model.config.max_world_steps}; "
            f"ask for 0..{model.config.max_world_steps}"
        )
    return {**{f"num_world_steps={k}": {"num_world_steps": k} for k in world_steps}, **off}


def evaluate(
    model: TheWorld,
    processor: Gemma3Processor,
    num_clips: int = 200,
    questions_per_clip: int = 4,
    batch_size: int = 32,
    world_steps: Sequence[int] | None = None,
) -> EvalReport:
    """Accuracy per family and kind in each of `answer_modes`; with a world, its parts too: VAE PSNR, the rollout's
    error and the object reader's, over the model's own world steps."""
    modes = answer_modes(model, world_steps)
    examples = make_examples("test", num_clips, questions_per_clip=questions_per_clip)
    images = [e.image for e in examples]
    questions = [e.question for e in examples]
    report = EvalReport(kinds=[e.kind for e in examples], families=[e.family for e in examples])
    for mode, kwargs in modes.items():
        started = time.perf_counter()
        predictions = answer_questions(model, processor, images, questions, batch_size, **kwargs)
        report.seconds_per_answer[mode] = (time.perf_counter() - started) / len(examples)
        hits = [prediction == example.answer for example, prediction in zip(examples, predictions, strict=True)]
        report.hits[mode] = hits
        correct: dict[str, list[bool]] = {}
        for example, hit in zip(examples, hits, strict=True):
            correct.setdefault(example.family, []).append(hit)
            correct.setdefault(example.kind, []).append(hit)
            correct.setdefault("all", []).append(hit)
        report.accuracy[mode] = {name: float(np.mean(hits)) for name, hits in correct.items()}
        report.num_questions = {name: len(hits) for name, hits in correct.items()}
    if not model.config.enable_world:
        return report
    k = model.config.num_world_steps
    clips = to_model_range(simulate_clips("test", min(num_clips, 64)))
    report.vae_psnr_db = reconstruction_psnr(model.world_encoder.vae, clips.flatten(0, 1))
    if k:
        report.rollout = rollout_errors(model.dynamics, model.world_encoder, clips, rollout_steps=k)
    if model.config.world_objects is not None:
        test_clips = reading_data(model, "test", min(num_clips, 64))
        report.object_reading = reading_errors(model.object_reader, model.dynamics, *test_clips, rollout_steps=k)
        if model.object_reader.kind_token_ids is not None:
            report.object_facts = fact_accuracy(model.object_reader, fact_data(model, "test", min(num_clips, 64)))
    return report
