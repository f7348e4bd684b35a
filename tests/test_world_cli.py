"""`theworld world` end to end on a tiny diffusers pipeline, in one process and under torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from tiny_cosmos import save_tiny_cosmos_pipeline
from typer.testing import CliRunner

from theworld.cli.world import world

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = ["--resolution", "64x64", "--num-output-frames", "9", "--num-steps", "2", "--guidance", "2"]

app = typer.Typer(pretty_exceptions_enable=False)
app.command()(world)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(save_tiny_cosmos_pipeline(tmp_path_factory.mktemp("model"), "predict2.5"))


@pytest.fixture
def specs(tmp_path):
    (tmp_path / "assets").mkdir()
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "assets" / "robot.png")
    written = {
        "t2w.json": {"name": "text", "prompt": "a ball rolls", "seed": 3, "fps": 8},
        "i2w.json": {"name": "../../etc/x", "prompt": "a robot arm", "input_path": "assets/robot.png"},
        "gore.json": {"name": "blocked", "prompt": "gore"},
        "v2w.json": {"name": "broken", "prompt": "a clip", "input_path": "assets/broken.mp4"},
    }
    (tmp_path / "assets" / "broken.mp4").write_bytes(b"\x00not a video")
    for name, spec in written.items():
        (tmp_path / name).write_text(json.dumps(spec))
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_batch_runs_reports_bad_samples_and_exits_nonzero(model, specs, tmp_path):
    out = tmp_path / "out"
    result = invoke(
        "-i", specs / "t2w.json", specs / "*2w.json", specs / "gore.json", "--model", model, "-o", out, *TINY
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("blocked blocked") and "blocklist term 'gore'" in line for line in lines)
    assert any(line.startswith("failed  broken") and "cannot read video" in line for line in lines)
    assert "world: 2 ok, 1 blocked, 1 failed, 0 spec error(s)" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["etc_x", "text"]  # t2w.json matched twice: once run
    record = json.loads((out / "text" / "record.json").read_text())
    assert record["seed"] == 3 and record["fps"] == 8 and record["timings"]["generate_s"] > 0
    assert record["peak_memory"]["process_max_rss_mb"] > 0
    resolved = json.loads((out / "etc_x" / "spec.json").read_text())
    assert resolved["inference_type"] == "image2world" and resolved["resolution"] == [64, 64]
    assert resolved["input_path"] == str((specs / "assets" / "robot.png").resolve())


def test_cli_overrides_beat_spec_and_guardrail_can_be_disabled(model, specs, tmp_path):
    out = tmp_path / "out"
    result = invoke(
        "-i",
        specs / "t2w.json",
        specs / "gore.json",
        "--seed",
        11,
        "--fps",
        5,
        "--disable-guardrail",
        "--offload-model",
        "--offload-decoder",
        "--model",
        model,
        "-o",
        out,
        *TINY,
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "text" / "record.json").read_text())["seed"] == 11
    assert json.loads((out / "blocked" / "spec.json").read_text())["fps"] == 5


def test_spec_errors_fail_the_run_but_not_the_good_samples(model, specs, tmp_path):
    """A bad spec is bad input: exit 2, as every command's; the good specs still run."""
    (specs / "batch.jsonl").write_text('{"visual_input": "assets/robot.png", "prompt": "x"}\n{oops\n')
    result = invoke("--batch-input-path", specs / "batch.jsonl", "--model", model, "-o", tmp_path / "o", *TINY)
    assert result.exit_code == 2
    assert f"spec error: {specs / 'batch.jsonl'}:2: not valid JSON" in result.output
    assert "world: 1 ok, 0 blocked, 0 failed, 1 spec error(s)" in result.output


def test_unknown_model_and_missing_specs_exit_2(specs, tmp_path):
    result = invoke("-i", specs / "t2w.json", "--model", "no such model", "-o", tmp_path)
    assert result.exit_code == 2 and "not a registered backend" in result.output
    assert invoke("-o", tmp_path).exit_code == 2


@pytest.mark.slow
def test_two_torchrun_processes_write_what_one_process_writes(model, specs, tmp_path):
    script = tmp_path / "world_cli.py"
    script.write_text(
        "import typer\nfrom theworld.cli.world import world\n"
        "app = typer.Typer(pretty_exceptions_enable=False)\napp.command()(world)\napp()\n"
    )
    for i in range(3):
        (specs / f"s{i}.json").write_text(json.dumps({"prompt": f"scene {i}", "seed": i}))
    (specs / "s3.json").write_text(json.dumps({"prompt": "robot", "input_path": "assets/robot.png"}))
    args = [str(script), "-i", str(specs / "s*.json"), "--model", model, *TINY]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    runs = {
        "one": [sys.executable, *args, "-o", str(tmp_path / "one")],
        "two": [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            *args,
            "-o",
            str(tmp_path / "two"),
        ],
    }
    for label, cmd in runs.items():
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, f"{label}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
        assert proc.stderr.count("world: 4 ok, 0 blocked, 0 failed") == 1, proc.stderr[-3000:]
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == ["s0", "s1", "s2", "s3"] == sorted(p.name for p in (tmp_path / "two").iterdir())
    ranks = {json.loads((tmp_path / "two" / n / "record.json").read_text())["rank"] for n in names}
    assert ranks == {0, 1}
    for name in names:
        for png in sorted((tmp_path / "one" / name / "frames").iterdir()):
            same = tmp_path / "two" / name / "frames" / png.name
            assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(same))), f"{name}/{png.name}"


def test_a_spec_of_the_wrong_type_is_bad_input(specs, tmp_path):
    (specs / "typed.json").write_text(json.dumps({"prompt": 5}))
    result = invoke("-i", specs / "typed.json", "-o", tmp_path / "o")
    assert result.exit_code == 2, result.output
    assert f'spec error: {specs / "typed.json"}: "prompt" must be a string, got int 5' in result.output
    assert not (tmp_path / "o").exists()


def test_more_input_frames_than_the_backend_makes_is_refused_before_any_sample(model, specs, tmp_path):
    """--num-input-frames alone, against the backend's default output frames: refused for each spec, before the
    run, as a spec that gives both is."""
    result = invoke("-i", specs / "i2w.json", "--num-input-frames", 2000, "--model", model, "-o", tmp_path / "o")
    assert result.exit_code == 2, result.output
    assert "num_input_frames=2000 must be below the" in result.output
    assert "world: 0 ok, 0 blocked, 0 failed, 1 spec error(s)" in result.output
    assert not (tmp_path / "o").exists()
