"""The shipped TheWorld-tiny: it loads by its documented names, answers held-out ToyWorld questions, and the
commands built on it work from the example image."""

import numpy as np
import pytest
from PIL import Image
from transformers import AutoProcessor
from typer.testing import CliRunner

import theworld
from theworld import TheWorld
from theworld.cli.main import app
from theworld.evaluation.answers import answer_questions
from theworld.media import usual_mode
from theworld.toyworld import make_examples
from theworld.toyworld.language import QUADRANTS

EXAMPLE = "examples/toyworld_scene.png"


@pytest.fixture(scope="module")
def default_model():
    model = TheWorld.from_pretrained(theworld.DEFAULT_MODEL).eval()
    return model, AutoProcessor.from_pretrained(theworld.DEFAULT_MODEL)


@pytest.fixture(scope="module")
def held_out():
    return make_examples("test", 100, questions_per_clip=4)


def accuracy(model, processor, examples, family: str, **kwargs) -> float:
    chosen = [e for e in examples if e.family == family]
    answers = answer_questions(model, processor, [e.image for e in chosen], [e.question for e in chosen], **kwargs)
    return float(np.mean([a == e.answer for a, e in zip(answers, chosen, strict=True)]))


@pytest.mark.slow
def test_default_model_answers_held_out_questions(default_model, held_out):
    model, processor = default_model
    static = accuracy(model, processor, held_out, "static", num_world_steps=4)
    temporal = accuracy(model, processor, held_out, "temporal", num_world_steps=4)
    temporal_without_world = accuracy(model, processor, held_out, "temporal", skip_world_tokens=True)
    # Floors a few points under what these 400 questions give (static 95.4%, temporal 82.6%) and above the
    # issue's targets (90%, 80%); `theworld eval` on 600 test questions gives 95.7% and 82.3% (README table).
    assert static >= 0.92, static
    assert temporal >= 0.80, temporal
    # 82.3% vs 55.7% on 600 questions; these 184 temporal questions give 82.6% vs 55.4%.
    assert temporal >= temporal_without_world + 0.22, (temporal, temporal_without_world)


def test_default_model_loads_by_name(default_model):
    model, _ = default_model
    assert TheWorld.from_pretrained("theworld-tiny").config.to_dict() == model.config.to_dict()
    assert model.config.num_world_steps == 4


def test_ask_cli_answers_and_saves_the_imagined_world(tmp_path):
    result = CliRunner().invoke(
        app, ["ask", EXAMPLE, "where will the red shape be after 2 steps?", "--save-world", str(tmp_path / "world")]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] in QUADRANTS
    strip = Image.open(tmp_path / "world.png")
    assert strip.width > 5 * strip.height  # the current frame and 4 imagined ones, side by side
    assert Image.open(tmp_path / "world.gif").n_frames == 5
    assert (tmp_path / "world.png").stat().st_mode & 0o777 == usual_mode(), "not mkstemp's private 0600"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["ask", "missing.png", "what colour is the ball?"], "Image not found"),
        (["ask", EXAMPLE, "what colour is the ball?", "--model", "no/such/model"], "Model not found"),
        (["ask", EXAMPLE, "what colour is the ball?", "--world-steps", "9"], "max_world_steps"),
        (["ask", EXAMPLE, "what colour is the ball?", "--world-steps", "-1"], "0 or more"),
    ],
)
def test_ask_cli_bad_input_is_one_clear_line(arguments, message):
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_eval_cli_prints_the_table(tmp_path):
    result = CliRunner().invoke(app, ["eval", "--clips", "3", "--json", str(tmp_path / "report.json")])
    assert result.exit_code == 0, result.output
    for row in ("num_world_steps=4", "num_world_steps=0", "enable_world=False", "PSNR", "position error (px)"):
        assert row in result.output
    assert (tmp_path / "report.json").is_file()


def test_the_object_reader_finds_every_shape(default_model):
    """The shipped reader, on held-out clips: where each shape is, within a few pixels, and which are there."""
    import torch

    from theworld.evaluation.world_data import reading_data
    from theworld.evaluation.world_parts import reading_errors

    model, _ = default_model
    with torch.no_grad():
        errors = reading_errors(model.object_reader, model.dynamics, *reading_data(model, "test", 16))
    # 1.05 px and 99.5% on the current frame over the test clips of `theworld eval`; these 16 give 0.94 px and
    # 100%, and 8.5 px and 85.4% on the fourth imagined frame.
    assert errors["position_error_px"][0] < 2.0, errors
    assert errors["presence_accuracy"][0] > 0.95, errors
    # Imagined frames are blurrier, so read worse, but still far better than a guess (about 20 px, 75%).
    assert errors["position_error_px"][-1] < 15.0 and errors["presence_accuracy"][-1] > 0.7, errors


def test_the_object_reader_decodes_facts(default_model):
    """The shipped fact heads, on held-out clips read from single frames and their imagined futures."""
    from theworld.evaluation.world_data import fact_data
    from theworld.evaluation.world_parts import fact_accuracy

    model, _ = default_model
    accuracy = fact_accuracy(model.object_reader, fact_data(model, "test", 16))
    # `theworld eval`'s test clips: 96.7-100% for halves, hit floor, left of, above, larger; meet 90.5%; faster
    # 69.4% (these 16: 97.6-100%, meet 87.3%, faster 69.8%; the VAE's latents keep little of the motion trails, so
    # speed is read poorly: README).
    for fact in ("right", "bottom", "hit_floor", "left_of", "above", "larger"):
        assert accuracy[fact] > 0.9, accuracy
    assert accuracy["meet"] > 0.8 and accuracy["faster"] > 0.55, accuracy
