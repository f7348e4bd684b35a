"""Each training recipe runs end to end on a few steps of tiny data and leaves a loadable checkpoint."""

import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from support import HAS_ESPEAK
from typer.testing import CliRunner

from theworld import TheWorld
from theworld.cli.main import app
from theworld.evaluation.world_data import simulate_clips
from theworld.evaluation.world_parts import reconstruction_psnr
from theworld.media import to_model_range
from theworld.omni.talker import Speaker
from theworld.toyworld import render_frame, simulate
from theworld.training.checkpoint_stage import new_model
from theworld.training.orchestration import train_all
from theworld.training.recipe import CHECKPOINT_STAGES, run_stage
from theworld.training.settings import SETTINGS
from theworld.training.vae import _pixel_weights


@pytest.fixture(scope="module")
def smoke_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recipe") / "tiny"
    stages = CHECKPOINT_STAGES if HAS_ESPEAK else ("vae", "dynamics", "language")
    metrics = {stage: run_stage(stage, folder, SETTINGS["smoke"]) for stage in stages}
    return folder, metrics


@pytest.mark.slow
def test_every_stage_writes_its_metrics_and_a_loadable_checkpoint(smoke_checkpoint):
    folder, metrics = smoke_checkpoint
    assert torch.isfinite(torch.tensor(metrics["vae"]["vae_val_psnr_db"]))
    assert torch.isfinite(torch.tensor(metrics["dynamics"]["dynamics_train_mse"]))
    assert torch.isfinite(torch.tensor(metrics["language"]["language_train_loss"]))
    log = json.loads((folder / "training_log.json").read_text())
    assert set(log) == set(metrics)
    assert not list(folder.parent.glob(".tiny-*")), "no staging folder may be left behind"
    umask = os.umask(0)
    os.umask(umask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask, (
        "a checkpoint folder must get the umask's permissions, not mkdtemp's private 0700"
    )
    model = TheWorld.from_pretrained(folder)
    assert model.dynamics.out.weight.abs().sum() > 0, "training moved the dynamics off copy-the-last-frame"
    assert model.config.world_encoder_config["latents_mean"] == model.world_encoder.latents_mean.tolist()
    # The logged figure is the saved VAE's: measuring the checkpoint again on the same held-out clips gives it.
    held_out = to_model_range(simulate_clips("val", max(SETTINGS["smoke"].vae_clips // 10, 2))).flatten(0, 1)
    with torch.no_grad():
        remeasured = reconstruction_psnr(model.world_encoder.vae, held_out)
    assert remeasured == pytest.approx(metrics["vae"]["vae_val_psnr_db"], abs=1e-3)


@pytest.mark.slow
@pytest.mark.needs_espeak
def test_the_speech_stages_give_ears_and_a_voice_that_later_stages_keep(smoke_checkpoint):
    from transformers import AutoProcessor

    folder, metrics = smoke_checkpoint
    assert metrics["hearing"]["speech_recordings"] > 0 and "talker_train_loss" in metrics["speaking"]
    model = TheWorld.from_pretrained(folder)
    assert model.config.audio_config is not None
    assert type(AutoProcessor.from_pretrained(folder)).__name__ == "TheWorldProcessor"
    run_stage("language", folder, SETTINGS["smoke"])
    speaker = Speaker.from_pretrained(folder)  # the voice survives a later stage's atomic rewrite
    assert speaker.speak("yes", max_frames=5).ndim == 1


@pytest.mark.slow
@pytest.mark.needs_espeak
def test_fresh_ears_train_a_new_ear_whatever_the_old_one_heard(smoke_checkpoint, tmp_path):
    """`train hearing --fresh-ears` starts the ear from scratch: two checkpoints that differ only in their old
    ear come out with the same new one; without it, each continues its own."""

    from safetensors.torch import load_file, save_file

    folder, _ = smoke_checkpoint
    shutil.copytree(folder, tmp_path / "as_is")
    shutil.copytree(folder, tmp_path / "other_ear")
    weights = load_file(tmp_path / "other_ear" / "model.safetensors")
    for name in weights:
        if name.startswith("audio_encoder."):
            weights[name] = weights[name] + 0.1
    save_file(weights, tmp_path / "other_ear" / "model.safetensors", metadata={"format": "pt"})

    def ear_after(name: str, fresh: bool) -> dict[str, torch.Tensor]:
        shutil.copytree(tmp_path / name, tmp_path / f"{name}-{fresh}")
        run_stage("hearing", tmp_path / f"{name}-{fresh}", replace(SETTINGS["smoke"], fresh_ears=fresh))
        trained = load_file(tmp_path / f"{name}-{fresh}" / "model.safetensors")
        return {k: v for k, v in trained.items() if k.startswith("audio_encoder.")}

    fresh, fresh_other = ear_after("as_is", True), ear_after("other_ear", True)
    assert fresh and all(torch.equal(fresh[k], fresh_other[k]) for k in fresh)
    continued, continued_other = ear_after("as_is", False), ear_after("other_ear", False)
    assert not all(torch.equal(continued[k], continued_other[k]) for k in continued)


@pytest.mark.slow
@pytest.mark.needs_espeak
def test_train_all_with_two_jobs_builds_what_the_stages_build_one_by_one(smoke_checkpoint, tmp_path):
    """`train all` trains the ear and the voice in a second process beside the world stages, and the language
    stage in two: the same numbers as the stages run one after another in one process, and nothing of the second
    process's folder is left behind."""
    folder, _ = smoke_checkpoint
    one_by_one = json.loads((folder / "training_log.json").read_text())
    train_all(tmp_path / "tiny", SETTINGS["smoke"], jobs=2)
    together = json.loads((tmp_path / "tiny" / "training_log.json").read_text())
    for stage, figure in [
        ("language", "language_train_loss"),  # half of each batch in a second process
        ("hearing", "ears_ctc_loss"),
        ("hearing", "hearing_train_loss"),
        ("speaking", "talker_train_loss"),
    ]:
        assert together[stage][0]["metrics"][figure] == one_by_one[stage][0]["metrics"][figure], (stage, figure)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
    assert Speaker.from_pretrained(tmp_path / "tiny").speak("yes", max_frames=5).ndim == 1


@pytest.mark.slow
@pytest.mark.needs_espeak
def test_a_failing_second_process_keeps_the_world_stages(tmp_path):
    broken = replace(SETTINGS["smoke"], ears_batch_size=0)  # the second process cannot train the ear
    with pytest.raises(RuntimeError, match="second process .* failed.*train hearing"):
        train_all(tmp_path / "tiny", broken, jobs=2)
    assert set(json.loads((tmp_path / "tiny" / "training_log.json").read_text())) == {
        "vae",
        "dynamics",
        "objects",
        "language",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


@pytest.mark.slow
def test_the_language_stage_makes_the_same_checkpoint_in_one_or_two_processes(smoke_checkpoint, tmp_path):
    from safetensors.torch import load_file

    folder, _ = smoke_checkpoint
    for jobs in (1, 2):
        shutil.copytree(folder, tmp_path / f"jobs{jobs}")
        run_stage("language", tmp_path / f"jobs{jobs}", SETTINGS["smoke"], jobs=jobs)
    one, two = (load_file(tmp_path / f"jobs{jobs}" / "model.safetensors") for jobs in (1, 2))
    assert one.keys() == two.keys()
    assert all(torch.equal(one[name], two[name]) for name in one), "two processes must make the same update as one"
    trained = load_file(folder / "model.safetensors")
    name = "language_model.model.embed_tokens.weight"
    assert not torch.equal(trained[name], one[name]), "the language stage trained"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs1", "jobs2"]


def _helper_that_breaks():
    import torch.distributed as dist

    dist.all_reduce(torch.ones(2))
    raise ValueError("the helper broke halfway")


@pytest.mark.slow
def test_a_failing_data_parallel_helper_is_reported_not_waited_for():
    import time

    import torch.distributed as dist

    from theworld.training.parallel import data_parallel

    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="(?s)the helper broke halfway.*helper process failed.*--jobs 1"):
        with data_parallel(2, _helper_that_breaks, ()):
            for _ in range(3):
                dist.all_reduce(torch.ones(2))
    assert not dist.is_initialized(), "the process group is torn down"
    assert time.perf_counter() - started < 120, "a dead helper is noticed at once, not after the group's timeout"


@pytest.mark.slow
def test_the_vae_stage_records_latent_statistics(smoke_checkpoint):
    folder, _ = smoke_checkpoint
    config = json.loads((folder / "config.json").read_text())
    stds = config["world_encoder_config"]["latents_std"]
    assert stds != [1.0] * len(stds), "the statistics of the trained VAE replace the placeholders"


@pytest.mark.parametrize("seed", [20_000_000, 20_000_001, 20_000_002])
def test_the_vae_loss_weights_exactly_the_motion_trails(seed):
    """The trail weight lands on the pixels only a ghost covers (frames t-1, t-2), never on a shape or the floor."""
    clip = simulate(seed)
    frames = to_model_range(clip.frames)
    weights = _pixel_weights(frames, 1.0, 7.0)  # the trails alone
    size = clip.frames.shape[1]
    for t in range(2, len(clip.states)):
        without_trails = render_frame(clip.states[t], (), size)
        ghosts = (clip.frames[t] != without_trails).any(axis=-1)
        assert ghosts.any()
        assert torch.equal(weights[t, 0], torch.from_numpy(np.where(ghosts, 7.0, 1.0)).float())


def test_vae_init_diffusers_starts_the_vae_from_its_own_initialisation():
    """`--vae-init diffusers` trains the VAE from what diffusers gives it (PyTorch's defaults: uniform within
    1/sqrt(fan_in), biases too), not the language model's normal(0, 0.02) and zero biases; nothing else changes."""
    gemma, _ = new_model(replace(SETTINGS["smoke"], vae_init="gemma"))
    diffusers, _ = new_model(replace(SETTINGS["smoke"], vae_init="diffusers"))
    convolutions = [m for m in diffusers.world_encoder.vae.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    assert convolutions and all(m.bias.abs().sum() > 0 for m in convolutions)
    first = diffusers.world_encoder.vae.encoder.conv_in.weight
    bound = first[0].numel() ** -0.5
    assert first.abs().max() <= bound and first.std() > 0.8 * bound / 3**0.5
    assert not gemma.world_encoder.vae.encoder.conv_in.bias.any()
    others = {name: tensor for name, tensor in gemma.state_dict().items() if not name.startswith("world_encoder.vae.")}
    assert all(torch.equal(diffusers.state_dict()[name], tensor) for name, tensor in others.items())


@pytest.mark.slow
def test_the_recipe_is_reproducible(tmp_path):
    first = run_stage("vae", tmp_path / "a", SETTINGS["smoke"])
    second = run_stage("vae", tmp_path / "b", SETTINGS["smoke"])
    assert first["vae_train_mse"] == second["vae_train_mse"]


def test_train_cli_rejects_bad_input(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "physics", "--output-dir", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Unknown stage 'physics'" in result.output
    result = runner.invoke(app, ["train", "dynamics", "--output-dir", str(tmp_path / "none"), "--settings", "smoke"])
    assert result.exit_code == 2 and "run `theworld train vae`" in result.output
    result = runner.invoke(app, ["train", "all", "--settings", "huge"])
    assert result.exit_code == 2 and "Unknown settings" in result.output
    result = runner.invoke(app, ["train", "vae", "--vae-trail-weight", "0.5", "--output-dir", str(tmp_path / "y")])
    assert result.exit_code == 2 and "--vae-trail-weight" in result.output and not (tmp_path / "y").exists()
    result = runner.invoke(app, ["train", "language", "--vae-trail-weight", "5", "--output-dir", str(tmp_path / "z")])
    assert result.exit_code == 2 and "--vae-trail-weight does not apply" in result.output
    result = runner.invoke(app, ["train", "vae", "--vae-init", "xavier", "--output-dir", str(tmp_path / "w")])
    assert result.exit_code == 2 and "Unknown --vae-init 'xavier'" in result.output and not (tmp_path / "w").exists()
    result = runner.invoke(app, ["train", "vae", "--asked-facts", "--output-dir", str(tmp_path / "v")])
    assert result.exit_code == 2 and "--asked-facts does not apply to the vae stage" in result.output
    result = runner.invoke(app, ["train", "all", "--no-world", "--asked-facts", "--output-dir", str(tmp_path / "u")])
    assert result.exit_code == 2 and "--asked-facts needs the world" in result.output and not (tmp_path / "u").exists()


@pytest.mark.slow
@pytest.mark.needs_espeak
def test_a_failing_closing_measurement_does_not_lose_the_training(smoke_checkpoint, monkeypatch):
    from theworld.evaluation import speech

    folder, _ = smoke_checkpoint

    def broken(*args):
        raise RuntimeError("the figure could not be computed")

    monkeypatch.setattr(speech, "round_trip", broken)
    before = (folder / "talker" / "model.safetensors").stat().st_mtime_ns
    metrics = run_stage("speaking", folder, replace(SETTINGS["smoke"], speech_eval_clips=1))
    assert metrics["round_trip"] == {"error": "RuntimeError: the figure could not be computed"}
    assert (folder / "talker" / "model.safetensors").stat().st_mtime_ns != before, "the new talker was saved"
    assert json.loads((folder / "training_log.json").read_text())["speaking"][-1]["metrics"]["round_trip"]["error"]
