"""The offload memory walk against a measured run: on tiny diffusers Cosmos pipelines, the parts (and so the
bytes) the execution device holds at each stage, as the offload hooks and the guardrail really move them, equal
what `offload_plan.walk` predicts for each `--offload-*` combination.

There is no second device on a CPU-only machine, so the execution device is `torch.device("cpu", 0)`: it
computes on the CPU, but the hooks' moves to it and back to "cpu" are told apart (`ResidencyTracker`)."""

import numpy as np
import pytest
import torch
from accelerate.utils import compute_module_sizes
from tiny_cosmos import save_tiny_cosmos_pipeline
from torch import nn

from theworld.world.backends import OffloadOptions, WorldRequest
from theworld.world.diffusion import CosmosDiffusionBackend
from theworld.world.guardrail import Guardrail
from theworld.world.offload_plan import (
    PARTS,
    ResidencyTracker,
    collapse,
    cosmos_stages,
    pipeline_parts,
    resident_parts,
    walk,
)

torch.set_num_threads(1)

DEVICE = torch.device("cpu", 0)
IMAGE = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)

# Cosmos-Predict1's documented rows (each adds to the one before), as `theworld world` flags, and the flags
# that move a part alone (where an offloaded part must still leave the device when a later part runs).
ROWS = {
    "none": {},
    "guardrail": {"guardrail": True},
    "guardrail+text_encoder": {"guardrail": True, "text_encoder": True},
    "guardrail+text_encoder+vae": {"guardrail": True, "text_encoder": True, "tokenizer": True, "decoder": True},
    "everything": {"guardrail": True, "text_encoder": True, "tokenizer": True, "decoder": True, "model": True},
    "text_encoder": {"text_encoder": True},
    "model": {"model": True},
}


class TinyChecker(nn.Module):
    """A guardrail model with weights: each check runs its forward, as a real checker's does."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x):
        return self.linear(x)

    def check_text_safety(self, prompt):
        self(torch.zeros(1, 4))
        return True

    def check_video_safety(self, frames):
        self(torch.zeros(1, 4))
        return frames


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    root = tmp_path_factory.mktemp("offload")
    return {family: str(save_tiny_cosmos_pipeline(root / family, family)) for family in ("predict2", "predict2.5")}


def run_tracked(path, offload, inference_type="image2world"):
    """One `theworld world` sample as the runner does it (prompt check, generate, video check), tracked."""
    tracker = ResidencyTracker(DEVICE)
    with tracker.track():
        guardrail = Guardrail(checker=TinyChecker(), offload=offload.guardrail)
        backend = CosmosDiffusionBackend.from_pretrained(path, guardrail=guardrail, offload=offload, device=DEVICE)
        tracker.watch(pipeline_parts(backend.pipe, guardrail.checker))
        loaded = tracker.visited()
        frames = None if inference_type == "text2world" else IMAGE
        request = WorldRequest(inference_type, "a ball rolls", 9, 64, 64, 16, 0, input_frames=frames, num_steps=2)
        assert guardrail.blocked_reason(request.prompt) is None
        video = guardrail.check_video_safety(backend.generate(request))
    return backend, tracker, video, loaded


@pytest.mark.parametrize("family", ["predict2", "predict2.5"])
@pytest.mark.parametrize("row", list(ROWS))
def test_the_walk_predicts_the_bytes_each_stage_really_holds(pipelines, family, row):
    offload = OffloadOptions(**ROWS[row])
    backend, tracker, _, loaded = run_tracked(pipelines[family], offload)
    kept = {part for part in PARTS if not getattr(offload, part)} | (set() if offload.guardrail else {"guardrail"})
    assert loaded == kept  # loading never puts an offloaded part on the device, even for a moment
    stages = cosmos_stages(backend.family)
    sizes = {name: compute_module_sizes(part)[""] for name, part in tracker.parts.items()}
    predicted = [
        (part, sum(sizes[p] for p in now)) for part, now in collapse(stages, resident_parts(stages, offload), sizes)
    ]
    measured = [(part, sum(sizes[p] for p in now)) for part, now in tracker.events]
    assert measured == predicted, f"tracked {tracker.events}"
    peak = max(stage.weight_bytes for stage in walk(stages, sizes, offload))
    assert peak == max(total for _, total in measured)


def test_an_offloaded_text_encoder_leaves_before_denoising_even_when_no_video_is_encoded(pipelines):
    offload = OffloadOptions(text_encoder=True)
    backend, tracker, *_ = run_tracked(pipelines["predict2.5"], offload, "text2world")
    stages = cosmos_stages(backend.family, "text2world")
    assert tracker.events == collapse(stages, resident_parts(stages, offload), tracker.parts)
    assert ("model", frozenset({"model", "tokenizer", "decoder", "guardrail"})) in tracker.events


@pytest.mark.parametrize("family", ["predict2", "predict2.5"])
def test_offloading_everything_changes_no_frame(pipelines, family):
    kept = run_tracked(pipelines[family], OffloadOptions())[2]
    offloaded = run_tracked(pipelines[family], OffloadOptions(**ROWS["everything"]))[2]
    assert np.array_equal(kept, offloaded)


def test_unknown_family_or_inference_type_is_refused_by_name():
    with pytest.raises(ValueError, match="family='CosmosTextToWorldPipeline'"):
        cosmos_stages("CosmosTextToWorldPipeline")
    with pytest.raises(ValueError, match="inference_type='video'"):
        cosmos_stages("Cosmos2VideoToWorldPipeline", "video")
