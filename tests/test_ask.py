"""`theworld ask` on a tiny checkpoint: the saved imagined world is the one the answer read."""

from PIL import Image
from support import make_image
from typer.testing import CliRunner

from theworld import TheWorld
from theworld.cli.main import app


def test_ask_imagines_the_world_once_for_the_answer_and_the_saved_frames(checkpoint, tmp_path, monkeypatch):
    make_image(3).save(tmp_path / "scene.png")
    arguments = ["ask", str(tmp_path / "scene.png"), "where?", "--model", str(checkpoint), "--max-new-tokens", "4"]
    plain = CliRunner().invoke(app, [*arguments, "--world-steps", "2"])
    assert plain.exit_code == 0, plain.output
    steps = []
    imagine = TheWorld.imagine
    monkeypatch.setattr(TheWorld, "imagine", lambda self, frames, k: steps.append(k) or imagine(self, frames, k))
    saved = CliRunner().invoke(app, [*arguments, "--world-steps", "2", "--save-world", str(tmp_path / "world")])
    assert saved.exit_code == 0, saved.output
    assert steps == [2], "one imagining serves the answer and the saved frames"
    assert saved.stdout == plain.stdout and plain.stdout.strip(), "saving the world does not change the answer"
    assert Image.open(tmp_path / "world.gif").n_frames == 3  # the current frame and 2 imagined ones
