"""The tiny Gemma 3 (text + SigLIP vision) and the world projector, trained on ToyWorld Q&A.

Examples are tokenised once into padded tensors and their world latents (current frame + imagined future,
from the trained VAE and dynamics) are computed once, so the training loop is pure tensor work.
"""

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import Gemma3Processor

from theworld.evaluation.speech_data import pad_features
from theworld.media import to_model_range
from theworld.modeling.modeling_theworld import TheWorld
from theworld.omni.audio_encoder import audio_token_count
from theworld.training.loop import optimize
from theworld.training.parallel import shard_generator

__all__ = [
    "ChatTensors",
    "encode_chats",
    "encode_images",
    "imagine_latents",
    "pixel_values_of",
    "read_objects",
    "train_language",
    "train_with_world_frozen",
]


@dataclass
class ChatTensors:
    """Right-padded single-turn chats: an optional image, an optional recording, an optional text; the
    labels cover the answer. `audio_index` points into a table of mel features (-1 or None: no audio)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    labels: torch.Tensor
    audio_index: torch.Tensor | None = None
    pixel_values: torch.Tensor | None = None
    world_latents: torch.Tensor | None = None
    # The object reader's reading of `world_latents` (`read_objects`), when the model has one: its detector is
    # frozen while the language model trains, so it reads each example once, not at every batch.
    world_object_states: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, index: torch.Tensor, features: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        length = int(self.attention_mask[index].sum(1).max())  # drop the columns that are padding in every row
        batch = {
            "input_ids": self.input_ids[index, :length],
            "attention_mask": self.attention_mask[index, :length],
            "token_type_ids": self.token_type_ids[index, :length],
            "labels": self.labels[index, :length],
        }
        if self.pixel_values is not None:
            batch["pixel_values"] = self.pixel_values[index]
        if self.world_latents is not None:
            batch["world_latents"] = self.world_latents[index].float()
        if self.world_object_states is not None:
            batch["world_object_states"] = self.world_object_states[index]
        audio = [] if self.audio_index is None else [features[i] for i in self.audio_index[index].tolist() if i >= 0]
        if audio:
            batch["input_features"], batch["input_features_mask"] = pad_features(audio)
        return batch


def encode_chats(
    processor: Gemma3Processor,
    images: list[np.ndarray | None],
    audio_frames: list[int | None],
    texts: list[str | None],
    answers: list[str],
) -> dict[str, torch.Tensor]:
    """Tokenise single-turn chats (image, then recording, then text, each optional) with their answers; the
    labels cover the answer and its <end_of_turn> only. Recordings need a `TheWorldProcessor`."""
    tokenizer = processor.tokenizer
    rows, prompt_lengths = [], []
    for image, frames, text, answer in zip(images, audio_frames, texts, answers, strict=True):
        content = []
        if image is not None:
            content.append({"type": "image"})
        if frames is not None:
            content.append({"type": "audio"})
        if text is not None:
            content.append({"type": "text", "text": text})
        messages = [{"role": "user", "content": content}]
        prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full = processor.apply_chat_template(
            [*messages, {"role": "assistant", "content": [{"type": "text", "text": answer}]}], tokenize=False
        )
        expand = {processor.boi_token: processor.full_image_sequence}
        if frames is not None:
            count = audio_token_count(frames, processor.audio_reduction_factor)
            expand[processor.boa_token] = (
                f"{processor.boa_token}{processor.audio_soft_token * count}{processor.eoa_token}"
            )
        for token, sequence in expand.items():
            prompt, full = prompt.replace(token, sequence), full.replace(token, sequence)
        rows.append(tokenizer(full, add_special_tokens=False).input_ids)
        prompt_lengths.append(len(tokenizer(prompt, add_special_tokens=False).input_ids))
    length = max(map(len, rows))
    input_ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    for i, prompt_length in enumerate(prompt_lengths):
        labels[i, :prompt_length] = -100
    token_type_ids = (input_ids == tokenizer.convert_tokens_to_ids("<image_soft_token>")).long()
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "labels": labels,
    }


def pixel_values_of(processor: Gemma3Processor, images: list[np.ndarray]) -> torch.Tensor:
    return processor.image_processor(images=[Image.fromarray(i) for i in images], return_tensors="pt")["pixel_values"]


@torch.no_grad()
def imagine_latents(model: TheWorld, frames: torch.Tensor, num_world_steps: int, batch_size: int = 64) -> torch.Tensor:
    """World latents (N, 1 + k, C, h, w) of frames (N, 3, H, W), exactly as inference computes them."""
    return torch.cat(
        [model.imagine(frames[i : i + batch_size], num_world_steps) for i in range(0, len(frames), batch_size)]
    )


@torch.no_grad()
def read_objects(model: TheWorld, latents: torch.Tensor, batch_size: int = 256) -> torch.Tensor | None:
    """The object reader's decoded states (N, 1 + k, objects, state) of world latents (N, 1 + k, C, h, w), or
    None for a model without one."""
    if model.config.world_objects is None:
        return None
    states = [
        model.object_reader.read(latents[i : i + batch_size].flatten(0, 1).float()).unflatten(0, (-1, latents.shape[1]))
        for i in range(0, len(latents), batch_size)
    ]
    return torch.cat(states)


def encode_images(model: TheWorld, processor: Gemma3Processor, images: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """`ChatTensors`' pixel values, world latents (half precision) and object states of `images` (pixel values
    only for a model without a world), each distinct image computed once: a clip's questions share frames, and
    imagining them is the costly part of preparing the data."""
    first_of: dict[bytes, int] = {}
    distinct: list[np.ndarray] = []
    index = []
    for image in images:
        key = image.tobytes()
        if key not in first_of:
            first_of[key] = len(distinct)
            distinct.append(image)
        index.append(first_of[key])
    index = torch.tensor(index)
    if not model.config.enable_world:
        return {"pixel_values": pixel_values_of(processor, distinct)[index]}
    latents = imagine_latents(model, to_model_range(np.stack(distinct)), model.config.num_world_steps).half()
    states = read_objects(model, latents)
    return {
        "pixel_values": pixel_values_of(processor, distinct)[index],
        "world_latents": latents[index],
        "world_object_states": None if states is None else states[index],
    }


def train_language(
    model: TheWorld,
    shards: dict[int, ChatTensors],
    steps: int,
    num_world_steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    world_dropout: float = 0.15,
    seed: int = 0,
    num_shards: int = 1,
    sample_weights: dict[int, torch.Tensor] | None = None,
) -> float:
    """Train everything but the frozen world encoder and dynamics on the data `shards` this process holds (of
    `num_shards`: the rest are in the other processes of its group, `training.parallel`); returns the last loss.
    Every update takes `batch_size` examples from each shard: uniformly, or in proportion to `sample_weights`
    (one weight per example of each shard).

    With probability `world_dropout` a shard's batch is seen without world tokens, so the model also answers what
    the image alone can tell (the `skip_world_tokens` ablation is then a fair baseline, not an unseen input).
    """
    generators = {shard: shard_generator(seed, shard) for shard in shards}

    def step_loss(shard: int) -> tuple[torch.Tensor, float]:
        data, generator = shards[shard], generators[shard]
        if sample_weights is None:
            index = torch.randint(len(data), (batch_size,), generator=generator)
        else:
            index = torch.multinomial(sample_weights[shard], batch_size, replacement=True, generator=generator)
        skip = bool(torch.rand((), generator=generator) < world_dropout)
        loss = model(**data.batch(index), num_world_steps=num_world_steps, skip_world_tokens=skip).loss
        return loss, loss.item()

    return train_with_world_frozen(model, step_loss, steps, lr, "language", shards=num_shards)


def train_with_world_frozen(
    model: TheWorld, step_loss, steps: int, lr: float, description: str, shards: int | None = None
) -> float:
    """Optimise everything but the world encoder, dynamics, object detector and fact heads (frozen: the language
    model learns to read the world they give) with `step_loss` (of a shard, with `shards`: `loop.optimize`);
    returns the last loss."""
    frozen = [model.world_encoder, model.dynamics] if model.config.enable_world else []
    if model.config.world_objects is not None:
        frozen.append(model.object_reader.detector)
        if model.object_reader.kind_token_ids is not None:
            frozen.append(model.object_reader.facts)
    for module in frozen:
        module.requires_grad_(False)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    loss_value = optimize(
        trainable, steps, lr, step_loss, description, weight_decay=0.01, warmup_fraction=0.05, shards=shards
    )
    for module in frozen:
        module.requires_grad_(True)
    model.eval()
    return loss_value
