"""The diffusers Cosmos adapter on tiny random pipelines saved in diffusers format and loaded by path."""

import time

import numpy as np
import pytest
import torch
from tiny_cosmos import save_tiny_cosmos_pipeline

from theworld.world.backends import OffloadOptions, WorldBackend, WorldRequest, get_backend, register_backend
from theworld.world.diffusion import CosmosDiffusionBackend
from theworld.world.guardrail import Guardrail

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def predict25(tmp_path_factory):
    return str(save_tiny_cosmos_pipeline(tmp_path_factory.mktemp("predict25"), "predict2.5"))


@pytest.fixture(scope="module")
def backend(predict25):
    return get_backend(predict25)


def request(inference_type, frames=None, **kw):
    defaults = dict(num_output_frames=9, height=64, width=64, fps=16, seed=1, num_steps=2, guidance=2.0)
    return WorldRequest(inference_type=inference_type, prompt="a robot", input_frames=frames, **{**defaults, **kw})


IMAGE = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
VIDEO = np.random.default_rng(1).integers(0, 256, (7, 64, 64, 3), dtype=np.uint8)


def test_loads_by_path_with_our_guardrail_as_safety_checker(backend):
    assert isinstance(backend, CosmosDiffusionBackend) and isinstance(backend, WorldBackend)
    assert backend.inference_types == ("text2world", "image2world", "video2world")
    assert isinstance(backend.pipe.safety_checker, Guardrail)


@pytest.mark.parametrize(
    "inference_type, frames", [("text2world", None), ("image2world", IMAGE), ("video2world", VIDEO)]
)
def test_each_inference_type_generates_deterministic_uint8_frames(backend, inference_type, frames):
    start = time.perf_counter()
    out = backend.generate(request(inference_type, frames))
    print(f"{inference_type}: {time.perf_counter() - start:.3f}s (threads={torch.get_num_threads()})")
    assert out.shape == (9, 64, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out, backend.generate(request(inference_type, frames)))
    assert not np.array_equal(out, backend.generate(request(inference_type, frames, seed=2)))


def test_conditioning_changes_the_output(backend):
    other = np.zeros_like(IMAGE)
    assert not np.array_equal(
        backend.generate(request("image2world", IMAGE)), backend.generate(request("image2world", other))
    )


def test_progress_reports_every_step(backend):
    seen = []
    backend.generate(request("text2world", num_steps=3), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_all_offload_flags_run_on_cpu_and_change_nothing(predict25, backend):
    offloaded = get_backend(predict25, offload=OffloadOptions(True, True, True, True, True))
    assert np.array_equal(
        offloaded.generate(request("video2world", VIDEO)), backend.generate(request("video2world", VIDEO))
    )


def test_frame_counts_that_do_not_fit_the_vae_are_refused(backend):
    with pytest.raises(ValueError, match="use 4k\\+1"):
        backend.generate(request("text2world", num_output_frames=8))


def test_pipeline_itself_refuses_a_blocked_prompt(backend):
    backend.pipe.safety_checker = Guardrail(blocklist=["robot"])
    try:
        with pytest.raises(ValueError, match="Guardrail detected unsafe text"):
            backend.generate(request("text2world"))
    finally:
        backend.pipe.safety_checker = Guardrail()


def test_predict2_video2world_pipeline_loads_and_refuses_text2world(tmp_path):
    predict2 = get_backend(str(save_tiny_cosmos_pipeline(tmp_path / "p2", "predict2")))
    assert predict2.inference_types == ("image2world", "video2world")
    assert predict2.generate(request("image2world", IMAGE)).shape == (9, 64, 64, 3)
    with pytest.raises(ValueError, match="cannot do text2world"):
        predict2.generate(request("text2world"))


def test_registry_names_beat_paths_and_unknown_names_explain_themselves(tmp_path):
    register_backend("echo-test", lambda name, **opts: ("built", name, opts))
    assert get_backend("echo-test", seed=1) == ("built", "echo-test", {"seed": 1})
    assert get_backend("toyworld").name == "toyworld"
    with pytest.raises(ValueError, match="has no model_index.json"):
        get_backend(str(tmp_path))
    with pytest.raises(ValueError, match="not a registered backend"):
        get_backend("no such model")
