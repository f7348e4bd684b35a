"""The Cosmos predictor as TheWorld's dynamics: what TheWorld imagines equals what diffusers' own Cosmos pipeline
denoises from the same frame, seed and steps (tiny random Predict2 and Predict2.5 folders in diffusers format);
the loading path builds it from such a folder; the per-call settings reach it; and bad settings are refused."""

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image
from support import chat_inputs, conversation, make_image
from tiny_cosmos import save_tiny_cosmos_pipeline
from transformers import Gemma3ForConditionalGeneration

from theworld import TheWorld
from theworld.modeling.cosmos_dynamics import CosmosDynamics
from theworld.world.guardrail import load_guardrail

PIPELINES = {"predict2": "Cosmos2VideoToWorldPipeline", "predict2.5": "Cosmos2_5_PredictBasePipeline"}


@pytest.fixture(scope="module")
def gemma_checkpoint(tmp_path_factory, model, processor):
    """A plain Gemma 3 folder holding the language and vision weights of the tiny TheWorld."""
    gemma = Gemma3ForConditionalGeneration(model.config.to_gemma3()).eval()
    gemma.load_state_dict(model.state_dict(), strict=False)
    folder = tmp_path_factory.mktemp("gemma3")
    gemma.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=list(PIPELINES))
def cosmos(request, tmp_path_factory, gemma_checkpoint):
    """A tiny Cosmos folder, its diffusers pipeline, and Gemma 3 loaded with that folder's predictor as dynamics."""
    folder = save_tiny_cosmos_pipeline(tmp_path_factory.mktemp(request.param), family=request.param)
    pipe = getattr(diffusers, PIPELINES[request.param]).from_pretrained(folder, safety_checker=load_guardrail())
    pipe.set_progress_bar_config(disable=True)
    fused = TheWorld.from_pretrained(gemma_checkpoint, cosmos_model_name=str(folder), dynamics_type="cosmos").eval()
    return request.param, folder, pipe, fused


def _pipeline_latents(family, pipe, image, steps, denoising_steps, guidance, seed, prompt=""):
    """The latent video diffusers' pipeline denoises from one frame, as a user calls it (image to world)."""
    kwargs = dict(
        prompt=prompt,
        height=image.height,
        width=image.width,
        num_frames=4 * steps + 1,
        num_inference_steps=denoising_steps,
        guidance_scale=guidance,
        generator=torch.Generator().manual_seed(seed),
        output_type="latent",
    )
    if family == "predict2.5":  # its image path needs torchvision; a one-frame video is the same (FINDINGS.md)
        kwargs["num_latent_conditional_frames"] = 1
    return pipe(video=[image], **kwargs).frames


@pytest.mark.parametrize("guidance", [1.0, 3.0])
@pytest.mark.parametrize("prompt", ["", "a ball rolls down a ramp"])
def test_imagined_latents_equal_the_diffusers_pipelines(cosmos, guidance, prompt):
    family, folder, pipe, fused = cosmos
    assert isinstance(fused.dynamics, CosmosDynamics)
    if family == "predict2":
        # Predict2 conditions on a posterior *sample*, TheWorld on the posterior mean (what its world encoder
        # gives): a VAE whose posterior has no spread makes the two the same frame.
        with torch.no_grad():
            pipe.vae.quant_conv.weight[4:] = 0
            pipe.vae.quant_conv.bias[4:] = -30.0
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    reference = _pipeline_latents(family, pipe, image, 2, 3, guidance, seed=7, prompt=prompt)
    frame = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255 * 2 - 1
    text = {}
    if prompt:  # the empty prompt's embeddings were saved at load; another prompt needs the text encoder
        fused.dynamics.load_text_encoder(str(folder))
        text["prompt"] = prompt
    ours = fused.imagine(frame, 2, denoising_steps=3, guidance=guidance, seed=7, **text)
    assert ours.shape == (1, 3, 4, 8, 8)
    # Latent frame 0 is the frame as encoded (the pipeline's own frame 0 keeps its last sigma's noise).
    torch.testing.assert_close(ours[:, 0], fused.world_encoder.encode(frame[:, None])[:, 0])
    torch.testing.assert_close(ours[:, 1:].transpose(1, 2), reference[:, :, 1:], atol=2e-5, rtol=1e-5)


def test_a_clip_conditions_the_predictor_as_the_pipeline_conditions_on_a_video(cosmos):
    """Given a clip, the predictor is conditioned on its last 5 frames encoded as one video (two conditional
    latent frames), and imagines what the pipeline denoises from that video."""
    family, folder, pipe, fused = cosmos
    if family == "predict2":  # as above: a posterior with no spread, so sample and mean are the same latents
        with torch.no_grad():
            pipe.vae.quant_conv.weight[4:] = 0
            pipe.vae.quant_conv.bias[4:] = -30.0
    rng = np.random.default_rng(5)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(6)]
    kwargs = dict(
        prompt="",
        height=64,
        width=64,
        num_frames=4 * (1 + 2) + 1,  # two conditional latent frames, two to imagine
        num_inference_steps=3,
        guidance_scale=1.0,
        generator=torch.Generator().manual_seed(11),
        output_type="latent",
    )
    if family == "predict2.5":
        kwargs["num_latent_conditional_frames"] = 2
    reference = pipe(video=images[-5:], **kwargs).frames
    clip = torch.stack([torch.from_numpy(np.array(i)).permute(2, 0, 1) for i in images])[None].float() / 255 * 2 - 1
    ours = fused.imagine(clip, 2, denoising_steps=3, seed=11)
    assert ours.shape == (1, 3, 4, 8, 8)
    torch.testing.assert_close(ours[:, 0], fused.world_encoder.encode(clip[:, -1:])[:, 0])
    torch.testing.assert_close(ours[:, 1:].transpose(1, 2), reference[:, :, 2:], atol=2e-5, rtol=1e-5)
    # It is the clip that conditions the future: the last frame alone imagines another one.
    alone = fused.imagine(clip[:, -1], 2, denoising_steps=3, seed=11)
    assert not torch.allclose(alone[:, 1:], ours[:, 1:], atol=1e-3)


def test_an_offloaded_predictor_visits_the_device_only_while_it_denoises(cosmos, model, gemma_checkpoint):
    """`--offload-world-model` (`TheWorld.place(device, offload_world_model=True)`): the predictor's transformer is
    on the CPU before and after imagining, and the imagined future is the one without offloading. On a CPU-only
    machine the execution device is `cpu:0`, a device the hook moves weights to and from as it would a GPU."""
    family, folder, pipe, fused = cosmos
    frame = torch.rand(1, 3, 64, 64) * 2 - 1
    kept = fused.imagine(frame, 2, denoising_steps=2, seed=3)
    offloaded = TheWorld.from_pretrained(gemma_checkpoint, cosmos_model_name=str(folder), dynamics_type="cosmos")
    offloaded.eval().place(torch.device("cpu", 0), offload_world_model=True)
    transformer, moves = offloaded.dynamics.transformer, []
    move = transformer.to

    def tracked(*args, **kwargs):  # a CPU tensor sent to cpu:0 reports "cpu": the moves are what tell
        moves.append(str(args[0] if args else kwargs.get("device")))
        return move(*args, **kwargs)

    transformer.to = tracked
    torch.testing.assert_close(offloaded.imagine(frame, 2, denoising_steps=2, seed=3), kept)
    # Each denoising step's call makes sure it is on the device (2 steps); once imagined, it goes back.
    assert moves == ["cpu:0", "cpu:0", "cpu"], "to the device to denoise, then back to the CPU"
    assert next(offloaded.dynamics.transformer.parameters()).device == torch.device("cpu"), "and leaves it after"
    with pytest.raises(ValueError, match="dynamics is not one"):
        model.place("cpu", offload_world_model=True)


def test_world_settings_reach_the_predictor_and_survive_saving(cosmos, processor, tmp_path):
    _, _, _, fused = cosmos
    inputs = chat_inputs(processor, [conversation(make_image(4), "where is the red ball?")])
    frame = inputs["pixel_values"]
    first, again = (fused.imagine(frame, 2, seed=1, denoising_steps=2) for _ in range(2))
    other = fused.imagine(frame, 2, seed=2, denoising_steps=2)
    assert torch.equal(first, again) and not torch.equal(first[:, 1:], other[:, 1:])
    assert torch.equal(first[:, 0], other[:, 0]), "the current frame is encoded, not imagined"
    output = fused.generate(
        **inputs, num_world_steps=2, world_denoising_steps=2, world_seed=1, max_new_tokens=3, do_sample=False
    )
    assert output.shape[1] == inputs["input_ids"].shape[1] + 3
    # Each imagined latent frame packs 4 video frames of the Wan VAE: --save-world decodes them as one video.
    assert fused.draw_world(first).shape == (1, 1 + 4 * 2, 3, 64, 64)
    fused.dynamics.enable_offload("cpu")  # the hooks of --offload-model; on a CPU machine the result is the same
    assert torch.equal(fused.imagine(frame, 2, seed=1, denoising_steps=2), first)
    fused.save_pretrained(tmp_path)
    reloaded = TheWorld.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded.dynamics, CosmosDynamics)
    assert torch.equal(reloaded.imagine(frame, 2, seed=1, denoising_steps=2), first)


def test_bad_world_settings_are_refused_before_compute(model, processor, gemma_checkpoint, cosmos):
    inputs = chat_inputs(processor, [conversation(make_image(4), "where is the red ball?")])
    with pytest.raises(ValueError, match="world_denoising_steps apply to a diffusion dynamics"):
        model.generate(**inputs, num_world_steps=1, world_denoising_steps=4, max_new_tokens=2)
    with pytest.raises(ValueError, match="needs cosmos_model_name="):
        TheWorld.from_pretrained(gemma_checkpoint, dynamics_type="cosmos")
    with pytest.raises(ValueError, match="world_denoising_steps must be 1 or more"):
        cosmos[3].imagine(inputs["pixel_values"], 1, denoising_steps=0)
    fresh = TheWorld.from_pretrained(gemma_checkpoint, cosmos_model_name=str(cosmos[1]), dynamics_type="cosmos")
    with pytest.raises(ValueError, match="world_prompt needs the Cosmos text encoder"):
        fresh.generate(**inputs, num_world_steps=1, world_prompt="where is the ball?", max_new_tokens=2)


@pytest.mark.slow
def test_the_training_stage_gives_a_checkpoint_a_cosmos_predictor(tmp_path):
    """`theworld train cosmos-dynamics` on a copy of the shipped model: its dynamics becomes a trained Cosmos
    transformer (per-frame world steps), and the folder loads back and imagines with it."""
    import shutil

    from theworld import DEFAULT_MODEL
    from theworld.modeling.names import locate_model
    from theworld.training.cosmos_dynamics_stage import COSMOS_DYNAMICS_SETTINGS
    from theworld.training.recipe import run_stage

    folder = tmp_path / "model"
    shutil.copytree(locate_model(DEFAULT_MODEL)[0], folder)
    before = TheWorld.from_pretrained(folder).dynamics
    metrics = run_stage("cosmos-dynamics", folder, COSMOS_DYNAMICS_SETTINGS["smoke"])
    assert len(metrics["latent_model"]) == len(metrics["latent_copy_last_frame"]) == 4
    model = TheWorld.from_pretrained(folder).eval()
    assert isinstance(model.dynamics, CosmosDynamics) and not isinstance(before, CosmosDynamics)
    assert model.dynamics.frames_per_step == 1
    frames = torch.rand(1, 3, 64, 64) * 2 - 1
    assert model.draw_world(model.imagine(frames, 2, denoising_steps=2)).shape == (1, 3, 3, 64, 64)
