"""`theworld eval`: the held-out ToyWorld test split, per question family, with and without the world."""

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import Gemma3Processor

from theworld.modeling.modeling_theworld import TheWorld
from theworld.toyworld import make_examples
from theworld.training.data import simulate_clips, to_model_range
from theworld.training.dynamics import rollout_errors
from theworld.training.language import chat_messages
from theworld.training.objects import fact_accuracy, fact_data, reading_data, reading_errors
from theworld.training.vae import reconstruction_psnr

__all__ = ["EvalReport", "answer_chats", "answer_questions", "evaluate"]


@dataclass
class EvalReport:
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # mode -> family -> accuracy
    seconds_per_answer: dict[str, float] = field(default_factory=dict)
    num_questions: dict[str, int] = field(default_factory=dict)
    vae_psnr_db: float = float("nan")
    rollout: dict[str, list[float]] = field(default_factory=dict)
    # With an object reader: its errors on the current frame and each imagined one (`objects.reading_errors`).
    object_reading: dict[str, list[float]] = field(default_factory=dict)
    # With fact heads: the accuracy of each decoded fact (`objects.fact_accuracy`).
    object_facts: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def answer_chats(
    model: TheWorld,
    processor: Gemma3Processor,
    chats: list[list[dict]],
    batch_size: int = 32,
    max_new_tokens: int = 24,
    **generate_kwargs,
) -> list[str]:
    """Greedy answers to single-turn chats (Gemma 3 message lists, any media), batched with left padding."""
    answers: list[str] = []
    for start in tqdm(range(0, len(chats), batch_size), desc="answering", leave=False):
        inputs = processor.apply_chat_template(
            chats[start : start + batch_size],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True},
        ).to(model.device)
        output = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, **generate_kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        answers += [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers


def answer_questions(
    model: TheWorld,
    processor: Gemma3Processor,
    images: list[np.ndarray],
    questions: list[str],
    batch_size: int = 32,
    **generate_kwargs,
) -> list[str]:
    """Greedy answers to (image, question) pairs."""
    chats = [chat_messages(Image.fromarray(image), q) for image, q in zip(images, questions, strict=True)]
    return answer_chats(model, processor, chats, batch_size, max_new_tokens=8, **generate_kwargs)


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
