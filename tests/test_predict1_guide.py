"""Cosmos-Predict1's autoregressive guide (inference_autoregressive_base.md), run as its users type it.

Its three examples (single generation, torchrun, batch) run with the guide's own arguments; only the program changes
(`theworld world` for `python cosmos_predict1/autoregressive/inference/base.py`). The working folder holds what
the guide's paths name: `checkpoints/Cosmos-Predict1-4B` (the shipped autoregressive model), the input video and the
batch file. Outputs land where Predict1 writes them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from theworld.cli.world import world
from theworld.media import decode_video, write_mp4
from theworld.toyworld import simulate, split_seeds
from theworld.world.autoregressive import shipped_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src"
SAMPLING = ["--top_p", "0.8", "--temperature", "1.0", "--offload_diffusion_decoder", "--offload_tokenizer"]
MODEL = ["--checkpoint_dir", "checkpoints", "--ar_model_dir", "Cosmos-Predict1-4B"]
VIDEO = ["--input_type", "video", "--input_image_or_video_path", "assets/autoregressive/input.mp4"]
EXAMPLE_1 = [*MODEL, *VIDEO, *SAMPLING, "--video_save_name", "autoregressive-4b"]
EXAMPLE_2 = ["--num_gpus", "1", *MODEL, *VIDEO, *SAMPLING, "--video_save_name", "autoregressive-4b-8gpu"]
BATCH = "assets/diffusion/batch_inputs/text2world.jsonl"
EXAMPLE_3 = [*MODEL, "--batch_input_path", BATCH, *SAMPLING, "--video_save_folder", "autoregressive-4b-batch"]

app = typer.Typer(pretty_exceptions_enable=False)
app.command()(world)


@pytest.fixture
def guide_folder(tmp_path, monkeypatch):
    """A working folder laid out as the guide expects, with ToyWorld clips for its inputs."""
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "Cosmos-Predict1-4B").symlink_to(shipped_checkpoint(), target_is_directory=True)
    (tmp_path / "assets" / "autoregressive").mkdir(parents=True)
    for i, seed in enumerate(split_seeds("test", 2)):
        write_mp4(
            tmp_path / "assets" / "autoregressive" / ("input.mp4" if i == 0 else "input2.mp4"),
            simulate(seed, 8).frames,
            8,
        )
    batch = tmp_path / BATCH
    batch.parent.mkdir(parents=True)
    # The guide's lines name videos relative to the working folder, as Predict1 reads them
    lines = [{"visual_input": "assets/autoregressive/input.mp4"}, {"visual_input": "assets/autoregressive/input2.mp4"}]
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def frames_of(path: Path) -> np.ndarray:
    return decode_video(path, lambda count: range(count))


def test_example_1_single_generation_writes_outputs_slash_name_mp4(guide_folder):
    result = CliRunner().invoke(app, EXAMPLE_1)
    assert result.exit_code == 0, result.output
    video = frames_of(guide_folder / "outputs" / "autoregressive-4b.mp4")
    assert video.shape == (8, 64, 64, 3)
    spec = json.loads((guide_folder / "outputs" / "autoregressive-4b.spec.json").read_text())
    assert (spec["inference_type"], spec["top_p"], spec["temperature"]) == ("video2world", 0.8, 1.0)
    record = json.loads((guide_folder / "outputs" / "autoregressive-4b.record.json").read_text())
    assert record["backend"] == "Cosmos-Predict1-4B"


def test_example_3_batch_names_videos_by_their_line(guide_folder):
    result = CliRunner().invoke(app, EXAMPLE_3)
    assert result.exit_code == 0, result.output
    folder = guide_folder / "autoregressive-4b-batch"
    assert sorted(p.name for p in folder.glob("*.mp4")) == ["0.mp4", "1.mp4"]
    for i, name in enumerate(("input.mp4", "input2.mp4")):
        assert Path(json.loads((folder / f"{i}.spec.json").read_text())["input_path"]).name == name


def test_num_gpus_must_match_the_processes_torchrun_started(guide_folder, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    result = CliRunner().invoke(app, [*EXAMPLE_2[:1], "8", *EXAMPLE_2[2:]])
    assert result.exit_code == 2
    assert "--num_gpus 8 but 1 process(es) are running" in result.output
    assert not (guide_folder / "outputs").exists()


@pytest.mark.parametrize(
    "args,problem",
    [
        (["--checkpoint_dir", "checkpoints", *VIDEO], "--checkpoint_dir needs --ar_model_dir"),
        ([*MODEL, "--model", "toyworld", *VIDEO], "--model and --ar_model_dir both name the model"),
        ([*MODEL, "--input_type", "audio", "--input_image_or_video_path", "x.mp4"], "--input_type 'audio' is unknown"),
        ([*MODEL, *VIDEO, "-o", "a", "--video_save_folder", "b"], "both name the output folder"),
    ],
)
def test_predict1_flags_that_do_not_go_together_are_one_line_and_exit_2(guide_folder, args, problem):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and problem in result.output, result.output


@pytest.mark.slow
def test_example_2_under_torchrun(guide_folder):
    """The guide's torchrun line with one process: torchrun sets WORLD_SIZE, which --num_gpus is checked against."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    proc = subprocess.run(
        [*cmd, "-m", "theworld.cli.main", "world", *EXAMPLE_2], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert frames_of(guide_folder / "outputs" / "autoregressive-4b-8gpu.mp4").shape == (8, 64, 64, 3)
