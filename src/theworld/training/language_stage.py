"""The language stage of TheWorld's checkpoint: the language model learns to answer ToyWorld questions about an
image and the world's reading of it."""

import torch

from theworld.toyworld import make_examples
from theworld.training.checkpoint_stage import in_two_processes
from theworld.training.language import ChatTensors, encode_chats, encode_images, train_language
from theworld.training.parallel import held_shards
from theworld.training.settings import RecipeSettings
from theworld.training.stage import StageContext

__all__ = ["kind_weights", "language"]


def language(context: StageContext) -> dict:
    """The examples are split into `language_shards`; with `jobs=2` each of two processes prepares and trains on
    its own (`in_two_processes`)."""
    model, processor, settings = context.model, context.processor, context.settings
    if settings.asked_facts and model.config.enable_world:
        ask_facts(model)
    with in_two_processes(context, settings.language_shards, language):
        examples = make_examples("train", settings.language_clips, questions_per_clip=settings.questions_per_clip)
        shards, weights = {}, {}
        for shard in held_shards(settings.language_shards):
            mine = examples[shard :: settings.language_shards]
            images = [e.image for e in mine]
            encoded = encode_chats(
                processor, images, [None] * len(mine), [e.question for e in mine], [e.answer for e in mine]
            )
            shards[shard] = ChatTensors(**encoded, **encode_images(model, processor, images))
            weights[shard] = kind_weights(mine, settings)
        loss = train_language(
            model,
            shards,
            settings.language_steps,
            model.config.num_world_steps,
            batch_size=settings.language_batch_size,
            lr=settings.language_lr,
            seed=settings.seed,
            num_shards=settings.language_shards,
            sample_weights=weights,
        )
    return {"language_train_loss": loss, "language_examples": len(examples)}


def ask_facts(model) -> None:
    """Give the model's object reader pair facts picked by the question's words (`asked_facts`), if it has none:
    both processes of the stage add them seeded alike, before either trains."""
    objects = model.config.world_objects
    if objects is None or objects.get("kind_token_ids") is None:
        raise ValueError("--asked-facts needs an object reader that knows kinds: run `theworld train objects` first")
    if not objects.get("asked_facts"):
        model.add_object_reader(dict(objects, asked_facts=True))


def kind_weights(examples: list, settings: RecipeSettings) -> torch.Tensor:
    """How often each example is drawn, by its question kind (`RecipeSettings.language_kind_weights`)."""
    return torch.tensor([settings.language_kind_weights.get(e.kind, 1.0) for e in examples])
