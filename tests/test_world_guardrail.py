"""The guardrail: blocklist, pluggable checker with offload, and the runner skipping blocked samples."""

import numpy as np

from theworld.world.guardrail import Guardrail, load_guardrail
from theworld.world.runner import run_world
from theworld.world.spec import WorldSpec


def test_blocklist_matches_whole_words_case_insensitively():
    guard = Guardrail(blocklist=["gore", "terrorist attack"])
    assert guard.blocked_reason("GORE everywhere") == "blocklist term 'gore'"
    assert guard.check_text_safety("a gorgeous sunset over the bay")
    assert not guard.check_text_safety("a terrorist attack on a city")


def test_default_guardrail_blocks_and_disabled_allows():
    assert not load_guardrail().check_text_safety("a nude figure")
    assert load_guardrail(disabled=True).check_text_safety("a nude figure")


class FakeCosmosChecker:
    """Stands in for cosmos_guardrail.CosmosSafetyChecker (which downloads models)."""

    def __init__(self):
        self.devices = []

    def check_text_safety(self, prompt):
        return "forbidden" not in prompt

    def check_video_safety(self, frames):
        return None if frames.mean() > 200 else frames

    def to(self, device):
        self.devices.append(str(device))
        return self


def test_a_plugged_checker_runs_and_offload_moves_it_only_while_checking():
    checker = FakeCosmosChecker()
    guard = Guardrail(blocklist=(), checker=checker, offload=True).to("cuda:0")
    assert checker.devices == []  # offloaded: stays put until used
    assert guard.blocked_reason("forbidden fruit") == "cosmos_guardrail text check"
    assert checker.devices == ["cuda:0", "cpu"]
    dark, bright = np.zeros((2, 4, 4, 3), np.uint8), np.full((2, 4, 4, 3), 255, np.uint8)
    assert guard.check_video_safety(dark) is dark
    assert guard.check_video_safety(bright) is None


class EchoBackend:
    name = "echo"
    inference_types = ("text2world",)
    default_fps = 4
    default_resolution = (16, 16)
    default_num_output_frames = 3
    device = "cpu"

    def __init__(self):
        self.calls = 0

    def generate(self, request, progress=None):
        self.calls += 1
        value = 255 if "bright" in request.prompt else 0
        return np.full((request.num_output_frames, request.height, request.width, 3), value, np.uint8)


def spec(name, prompt):
    return WorldSpec(name=name, prompt=prompt, inference_type="text2world", source=f"{name}.json")


def test_blocked_samples_are_skipped_and_the_batch_goes_on(tmp_path):
    backend = EchoBackend()
    guard = Guardrail(blocklist=["gore"], checker=FakeCosmosChecker())
    specs = [spec("a", "gore"), spec("b", "calm sea"), spec("c", "a bright flash")]
    results = run_world(specs, backend, guard, tmp_path)
    assert [(r.name, r.status) for r in results] == [("a", "blocked"), ("b", "ok"), ("c", "blocked")]
    assert "blocklist term 'gore'" in results[0].message and "video check" in results[2].message
    assert backend.calls == 2  # the blocked prompt never reached the model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
