"""Asking a model: single-turn chats in Gemma 3's message format, answered greedily in batches."""

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import track
from transformers import Gemma3Processor

from theworld.modeling.modeling_theworld import TheWorld

__all__ = ["answer_chats", "answer_questions", "chat_messages", "user_turn"]

progress_console = Console(stderr=True)


def user_turn(*items: dict) -> list[dict]:
    """A chat of one user message whose content is `items` ({"type": "image" | "audio" | "text", ...})."""
    return [{"role": "user", "content": list(items)}]


def chat_messages(image: Image.Image, question: str, answer: str | None = None) -> list[dict]:
    """A question about an image, and its answer as the assistant's turn if given."""
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


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
    starts = range(0, len(chats), batch_size)
    for start in track(starts, description="answering", console=progress_console, transient=True):
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
