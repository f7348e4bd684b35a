"""The world stages of TheWorld's checkpoint: the VAE, the dynamics, and the object reader (detector and fact
heads), each trained on simulated ToyWorld clips and measured on held-out ones."""

import torch

from theworld.evaluation.world_data import encode_clips, fact_data, reading_data, simulate_clips
from theworld.evaluation.world_parts import fact_accuracy, reading_errors, reconstruction_psnr
from theworld.media import to_model_range
from theworld.modeling.presets import preset_world_objects, resolve_world_objects
from theworld.toyworld import COLOURS, KINDS
from theworld.training.dynamics import train_dynamics
from theworld.training.objects import train_object_facts, train_object_reader
from theworld.training.stage import StageContext
from theworld.training.vae import latent_statistics, train_vae

__all__ = ["dynamics", "objects", "vae"]


def vae(context: StageContext) -> dict:
    """The world encoder's VAE, on single frames; its latent statistics go into the configs. As the first stage
    it also makes the model (`checkpoint_stage`): a model without a world (`--no-world`) is made and trains
    nothing here."""
    model, settings = context.model, context.settings
    if not model.config.enable_world:
        return {"vae_skipped": "no world"}
    frames = to_model_range(simulate_clips("train", settings.vae_clips)).flatten(0, 1)
    autoencoder = model.world_encoder.vae
    mse = train_vae(
        autoencoder,
        frames,
        settings.vae_steps,
        settings.vae_batch_size,
        trail_weight=settings.vae_trail_weight,
        seed=settings.seed,
    )
    mean, std = latent_statistics(autoencoder, frames)
    # The statistics normalise the latents the dynamics and the projector see; they live in the VAE config.
    model.config.world_encoder_config = {**model.config.world_encoder_config, "latents_mean": mean, "latents_std": std}
    autoencoder.register_to_config(latents_mean=mean, latents_std=std)
    model.world_encoder.latents_mean.copy_(torch.tensor(mean))
    model.world_encoder.latents_std.copy_(torch.tensor(std))
    held_out = to_model_range(simulate_clips("val", max(settings.vae_clips // 10, 2))).flatten(0, 1)
    return {"vae_train_mse": mse, "vae_val_psnr_db": reconstruction_psnr(autoencoder, held_out)}


def dynamics(context: StageContext) -> dict:
    """The dynamics, on the latents of whole clips: it learns to roll the world forward. A model that imagines
    nothing (no world, or `num_world_steps=0`) skips it."""
    model, settings = context.model, context.settings
    if not model.config.enable_world or model.config.num_world_steps == 0:
        return {"dynamics_skipped": "no world" if not model.config.enable_world else "num_world_steps=0"}
    clips = to_model_range(simulate_clips("train", settings.dynamics_clips))
    latents = encode_clips(model.world_encoder, clips)
    mse = train_dynamics(
        model.dynamics,
        latents,
        settings.dynamics_steps,
        model.config.num_world_steps,
        batch_size=settings.dynamics_batch_size,
        seed=settings.seed,
    )
    return {"dynamics_train_mse": mse}


def objects(context: StageContext) -> dict:
    """The object reader's detector, on encoded and imagined latents of ToyWorld clips, then its fact heads on what
    it reads from single frames and their imagined futures. A checkpoint without an object reader (or without the
    preset's kind words) gets one first, so a language stage after this one must teach the language model to read
    it."""
    model, processor, settings = context.model, context.processor, context.settings
    if not model.config.enable_world:
        return {"objects_skipped": "no world"}
    wanted = preset_world_objects(settings.preset, COLOURS, KINDS)
    if wanted is None and model.config.world_objects is None:
        raise ValueError(f"The preset {settings.preset!r} names no world objects for an object reader")
    if wanted is not None and (
        model.config.world_objects is None or "kinds" in wanted.keys() - model.config.world_objects.keys()
    ):
        model.add_object_reader(resolve_world_objects(wanted, processor.tokenizer))
    metrics = {}
    steps = model.config.num_world_steps
    if settings.objects_steps:
        latents, targets = reading_data(model, "train", settings.objects_clips)
        metrics["objects_train_loss"] = train_object_reader(
            model.object_reader,
            model.dynamics,
            latents,
            targets,
            settings.objects_steps,
            steps,
            batch_size=settings.objects_batch_size,
            seed=settings.seed,
        )
    held_out = reading_data(model, "val", max(settings.objects_clips // 8, 2))
    errors = reading_errors(model.object_reader, model.dynamics, *held_out, rollout_steps=steps)
    metrics.update({f"objects_val_{name}": value for name, value in errors.items()})
    if model.object_reader.kind_token_ids is not None:
        data = fact_data(model, "train", settings.facts_clips)
        metrics["facts_train_loss"] = train_object_facts(
            model.object_reader, data, settings.facts_steps, settings.facts_batch_size, seed=settings.seed
        )
        held_out_facts = fact_data(model, "val", max(settings.facts_clips // 10, 2))
        accuracy = fact_accuracy(model.object_reader, held_out_facts)
        metrics.update({f"facts_val_{name}": value for name, value in accuracy.items()})
    return metrics
