"""The baselines the world is measured against: `theworld train all --no-world` and `--world-steps 0` make models
on the same recipe, and `theworld eval` compares models on the same questions with paired 95% intervals."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from theworld import TheWorld
from theworld.cli.main import app
from theworld.evaluation.comparison import paired_difference


@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    """Both baselines, trained with the smoke settings through the stages that make a question answerer."""
    folder = tmp_path_factory.mktemp("baselines")
    runner = CliRunner()
    made = {}
    for name, option in (("image-only", ["--no-world"]), ("current-frame", ["--world-steps", "0"])):
        made[name] = folder / name
        for stage in ("vae", "dynamics", "objects", "language"):
            first = option if stage == "vae" else []
            arguments = ["train", stage, "--settings", "smoke", "--output-dir", str(made[name]), "--jobs", "1"]
            result = runner.invoke(app, arguments + first)
            assert result.exit_code == 0, result.output
    return made


@pytest.mark.slow
def test_no_world_builds_no_world_parts_and_trains_none(baselines):
    model = TheWorld.from_pretrained(baselines["image-only"])
    assert not model.config.enable_world
    assert not any(name.startswith(("world_", "dynamics", "object_reader")) for name, _ in model.named_parameters())
    log = json.loads((baselines["image-only"] / "training_log.json").read_text())
    for stage in ("vae", "dynamics", "objects"):
        assert log[stage][-1]["metrics"][f"{stage}_skipped"] == "no world"
    assert np.isfinite(log["language"][-1]["metrics"]["language_train_loss"])
    assert log["language"][-1]["settings"]["asked_facts"]  # the recipe's default, with no reader to ask here


@pytest.mark.slow
def test_world_steps_zero_reads_the_current_frame_and_imagines_nothing(baselines):
    model = TheWorld.from_pretrained(baselines["current-frame"])
    assert model.config.enable_world and model.config.num_world_steps == 0
    log = json.loads((baselines["current-frame"] / "training_log.json").read_text())
    assert log["dynamics"][-1]["metrics"]["dynamics_skipped"] == "num_world_steps=0"
    assert np.isfinite(log["vae"][-1]["metrics"]["vae_val_psnr_db"])
    # The object reader is trained on encoded frames only: its held-out error covers the current frame alone.
    assert len(log["objects"][-1]["metrics"]["objects_val_position_error_px"]) == 1
    assert model.dynamics.out.weight.abs().sum() == 0, "an untrained dynamics still copies the current frame"
    assert model.object_reader.asked_facts, "the recipe's language stage gives the reader asked facts"


@pytest.mark.slow
def test_eval_compares_models_on_the_same_questions(baselines, tmp_path):
    report = tmp_path / "comparison.json"
    models = [str(baselines["image-only"]), str(baselines["current-frame"]), "theworld-tiny"]
    arguments = ["eval", "--clips", "4", "--json", str(report)]
    for model in models:
        arguments += ["--model", model]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "paired 95% interval" in result.output
    written = json.loads(report.read_text())
    image_only, current_frame, shipped = (written["models"][m] for m in models)
    assert list(image_only["hits"]) == ["enable_world=False"]
    assert list(current_frame["hits"])[0] == "num_world_steps=0"
    assert list(shipped["hits"])[0] == "num_world_steps=4"
    first, second = written["comparison"]
    assert first["a"].startswith(models[0]) and first["b"].startswith(models[1])
    # The difference the comparison reports is the one the two models' own answers give.
    hits_a, hits_b = current_frame["hits"]["num_world_steps=0"], shipped["hits"]["num_world_steps=4"]
    assert second["all"]["difference"] == pytest.approx(np.mean(hits_b) - np.mean(hits_a))
    assert second["all"]["low"] <= second["all"]["difference"] <= second["all"]["high"]


def test_eval_refuses_bad_world_steps():
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--world-steps", "0,x"])
    assert result.exit_code == 2 and "comma-separated" in result.output
    result = runner.invoke(app, ["eval", "--world-steps", "9", "--clips", "1"])
    assert result.exit_code == 2 and "max_world_steps=4" in result.output
    result = runner.invoke(app, ["eval", "--model", "theworld-tiny", "--model", "theworld-tiny"])
    assert result.exit_code == 2 and "twice" in result.output


def test_world_options_shape_the_model_only_where_it_is_made(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "language", "--world-steps", "0", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2 and "`all` or `vae`" in result.output
    result = runner.invoke(app, ["train", "all", "--no-world", "--world-steps", "0", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--world-steps needs the world" in result.output


def test_the_paired_interval_covers_the_true_difference_95_percent_of_the_time():
    """Two models answering 600 shared questions, correlated as real models are (most questions are easy for
    both): over many draws, the 95% interval holds the true difference about 95% of the time."""
    rng = np.random.default_rng(0)
    true_a, true_b, covered, draws = 0.70, 0.78, 0, 2000
    for _ in range(draws):
        shared = rng.random(600)
        a = shared < true_a
        b = shared < true_b
        flip = rng.random(600) < 0.1  # some questions each model gets right or wrong on its own
        a = np.where(flip, rng.random(600) < true_a, a)
        b = np.where(flip, rng.random(600) < true_b, b)
        difference = paired_difference(a.tolist(), b.tolist())
        covered += difference.low <= true_b - true_a <= difference.high
    assert 0.93 <= covered / draws <= 0.97


def test_a_paired_difference_needs_the_same_questions():
    with pytest.raises(ValueError, match="same questions"):
        paired_difference([True, False], [True])
    same = paired_difference([True, False, True], [True, False, True])
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
