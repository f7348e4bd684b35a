"""Recipe 3: the tiny Gemma 3 (text + SigLIP vision) and the world projector, trained on ToyWorld Q&A.

Examples are tokenised once into padded tensors and their world latents (current frame + imagined future,
from the trained VAE and dynamics) are computed once, so the training loop is pure tensor work.
"""

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import Gemma3Processor

from theworld.modeling.modeling_theworld import TheWorld
from theworld.training.loop import optimize

__all__ = ["QATensors", "chat_messages", "encode_examples", "imagine_latents", "train_language"]


@dataclass
class QATensors:
    """Right-padded training tensors, one row per (image, question, answer)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor
    world_latents: torch.Tensor

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        length = int(self.attention_mask[index].sum(1).max())  # drop the columns that are padding in every row
        return {
            "input_ids": self.input_ids[index, :length],
            "attention_mask": self.attention_mask[index, :length],
            "token_type_ids": self.token_type_ids[index, :length],
            "labels": self.labels[index, :length],
            "pixel_values": self.pixel_values[index],
            "world_latents": self.world_latents[index].float(),
        }


def chat_messages(image: Image.Image, question: str, answer: str | None = None) -> list[dict]:
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def encode_examples(
    processor: Gemma3Processor, images: list[np.ndarray], questions: list[str], answers: list[str]
) -> dict[str, torch.Tensor]:
    """Tokenise (image, question, answer) triples; labels cover the answer and its <end_of_turn> only."""
    pil_images = [Image.fromarray(image) for image in images]
    full = [
        processor.apply_chat_template(chat_messages(image, q, a), tokenize=False)
        for image, q, a in zip(pil_images, questions, answers, strict=True)
    ]
    prompts = [
        processor.apply_chat_template(chat_messages(image, q), tokenize=False, add_generation_prompt=True)
        for image, q in zip(pil_images, questions, strict=True)
    ]
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "right"
    try:
        encoded = processor(text=full, images=[[image] for image in pil_images], padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = "left"
    image_sequence = processor.full_image_sequence
    prompt_lengths = [
        len(tokenizer(prompt.replace(processor.boi_token, image_sequence), add_special_tokens=False).input_ids)
        for prompt in prompts
    ]
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
    for row, length in enumerate(prompt_lengths):
        labels[row, :length] = -100
    return {**encoded, "labels": labels}


@torch.no_grad()
def imagine_latents(model: TheWorld, frames: torch.Tensor, num_world_steps: int, batch_size: int = 64) -> torch.Tensor:
    """World latents (N, 1 + k, C, h, w) of frames (N, 3, H, W), exactly as inference computes them."""
    return torch.cat(
        [model.imagine(frames[i : i + batch_size], num_world_steps) for i in range(0, len(frames), batch_size)]
    )


def train_language(
    model: TheWorld,
    data: QATensors,
    steps: int,
    num_world_steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    world_dropout: float = 0.15,
    seed: int = 0,
) -> float:
    """Train everything but the frozen world encoder and dynamics on `data`; returns the last loss.

    With probability `world_dropout` a batch is seen without world tokens, so the model also answers what the
    image alone can tell (the `skip_world_tokens` ablation is then a fair baseline, not an unseen input).
    """
    generator = torch.Generator().manual_seed(seed)
    frozen = [model.world_encoder, model.dynamics]
    for module in frozen:
        module.requires_grad_(False)

    def step_loss() -> tuple[torch.Tensor, float]:
        index = torch.randint(len(data), (batch_size,), generator=generator)
        skip = bool(torch.rand((), generator=generator) < world_dropout)
        loss = model(**data.batch(index), num_world_steps=num_world_steps, skip_world_tokens=skip).loss
        return loss, loss.item()

    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    loss_value = optimize(trainable, steps, lr, step_loss, "language", weight_decay=0.01, warmup_fraction=0.05)
    for module in frozen:
        module.requires_grad_(True)
    model.eval()
    return loss_value
