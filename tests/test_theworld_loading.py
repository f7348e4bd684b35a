"""Loading and saving: round trips, Gemma 3 equivalence, base Gemma 3 + Cosmos VAE, Hub ids, Auto classes; weights
that must not or cannot load (pickles, truncated files), unknown names, and what a config alone tells."""

import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from diffusers import AutoencoderKLCosmos, AutoencoderKLWan
from huggingface_hub import constants as hf_constants
from safetensors.torch import save_file
from support import chat_inputs, conversation, make_image, write_hostile_pickle
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
)

from theworld import DEFAULT_MODEL, TheWorld, TheWorldConfig
from theworld.modeling import names
from theworld.modeling.loading import check_weights, describe_checkpoint, load_processor
from theworld.modeling.names import locate_model
from theworld.modeling.processing_theworld import TheWorldProcessor

GREEDY = {"max_new_tokens": 6, "do_sample": False}


@pytest.fixture(scope="module")
def inputs(processor):
    return chat_inputs(processor, [conversation(make_image(7), "where is the red ball?")])


@pytest.fixture(scope="module")
def gemma_checkpoint(tmp_path_factory, model, processor):
    """A plain Gemma 3 folder holding the language and vision weights of the tiny TheWorld."""
    gemma = Gemma3ForConditionalGeneration(model.config.to_gemma3()).eval()
    missing, _ = gemma.load_state_dict(model.state_dict(), strict=False)
    assert not missing
    folder = tmp_path_factory.mktemp("gemma3")
    gemma.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_round_trip_gives_identical_outputs_and_only_safetensors(model, inputs, tmp_path):
    model.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert "model.safetensors" in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl"))]
    reloaded = TheWorld.from_pretrained(tmp_path).eval()
    assert torch.equal(reloaded(**inputs, num_world_steps=3).logits, model(**inputs, num_world_steps=3).logits)
    assert torch.equal(
        reloaded.generate(**inputs, num_world_steps=3, **GREEDY),
        model.generate(**inputs, num_world_steps=3, **GREEDY),
    )


def test_auto_classes_know_theworld(checkpoint, model, inputs):
    assert isinstance(AutoConfig.from_pretrained(checkpoint), TheWorldConfig)
    auto_model = AutoModelForImageTextToText.from_pretrained(checkpoint).eval()
    assert type(auto_model) is TheWorld
    assert torch.equal(auto_model(**inputs, num_world_steps=1).logits, model(**inputs, num_world_steps=1).logits)
    processor = AutoProcessor.from_pretrained(checkpoint)
    assert processor.tokenizer.convert_tokens_to_ids("<world_soft_token>") == model.config.world_token_id


def test_the_shipped_processor_loads_as_theworlds():
    """The shipped folder names `TheWorldProcessor`; importing theworld registers it with AutoProcessor."""
    processor = AutoProcessor.from_pretrained(DEFAULT_MODEL)
    assert type(processor) is TheWorldProcessor
    assert processor.audio_token_id == processor.tokenizer.convert_tokens_to_ids("<audio_soft_token>")


def test_world_off_equals_transformers_gemma3(gemma_checkpoint, inputs):
    reference = Gemma3ForConditionalGeneration.from_pretrained(gemma_checkpoint).eval()
    plain = TheWorld.from_pretrained(gemma_checkpoint, enable_world=False).eval()
    assert not hasattr(plain, "world_encoder")
    assert torch.equal(plain(**inputs).logits, reference(**inputs).logits)
    assert torch.equal(plain.generate(**inputs, **GREEDY), reference.generate(**inputs, **GREEDY))


def test_skip_world_tokens_equals_transformers_gemma3(gemma_checkpoint, model, inputs):
    reference = Gemma3ForConditionalGeneration.from_pretrained(gemma_checkpoint).eval()
    assert torch.equal(model(**inputs, skip_world_tokens=True).logits, reference(**inputs).logits)
    assert torch.equal(
        model.generate(**inputs, skip_world_tokens=True, **GREEDY), reference.generate(**inputs, **GREEDY)
    )


def test_base_gemma3_plus_cosmos_vae_gets_fresh_world_parts(gemma_checkpoint, model, inputs, tmp_path):
    vae = AutoencoderKLWan.from_config(model.config.world_encoder_config)
    vae.save_pretrained(tmp_path / "cosmos" / "vae")
    fused = TheWorld.from_pretrained(gemma_checkpoint, cosmos_model_name=str(tmp_path / "cosmos")).eval()
    for name, tensor in vae.state_dict().items():
        assert torch.equal(fused.world_encoder.vae.state_dict()[name], tensor), name
    assert not fused.dynamics.out.weight.any(), "a fresh dynamics model starts as copy-the-last-frame"
    vocab = model.config.text_config.vocab_size
    world_ids = fused.config.world_token_ids
    assert fused.config.text_config.vocab_size == vocab + 3 and min(world_ids) == vocab
    reference = Gemma3ForConditionalGeneration.from_pretrained(gemma_checkpoint).eval()
    plain_logits = fused(**inputs, skip_world_tokens=True).logits[..., :vocab]
    assert torch.equal(plain_logits, reference(**inputs).logits)
    assert fused.generate(**inputs, num_world_steps=2, **GREEDY).shape[1] == inputs["input_ids"].shape[1] + 6
    fused.save_pretrained(tmp_path / "fused")
    again = TheWorld.from_pretrained(tmp_path / "fused").eval()
    assert torch.equal(again(**inputs, num_world_steps=2).logits, fused(**inputs, num_world_steps=2).logits)


def test_dtype_and_device_map(checkpoint, inputs):
    bf16 = TheWorld.from_pretrained(checkpoint, dtype=torch.bfloat16, device_map="cpu").eval()
    assert bf16.dtype == torch.bfloat16 and bf16.world_encoder.vae.dtype == torch.bfloat16
    output = bf16.generate(**inputs, num_world_steps=2, **GREEDY)
    assert output.shape[1] == inputs["input_ids"].shape[1] + GREEDY["max_new_tokens"]


@pytest.mark.slow
def test_hub_id_and_checkpoint_from_the_offline_cache(checkpoint, tmp_path):
    """A Hub repo id resolves through huggingface_hub's cache with HF_HUB_OFFLINE=1, as on a machine that
    downloaded it before."""
    repo = tmp_path / "hub" / "models--theworld-test--tiny"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoint, snapshot)
    shutil.copytree(checkpoint, snapshot / "checkpoint-100")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    script = textwrap.dedent(
        """
        import torch, theworld
        from theworld import TheWorld
        a = TheWorld.from_pretrained("theworld-test/tiny")
        b = TheWorld.from_checkpoint_hub("theworld-test/tiny", checkpoint_name="checkpoint-100")
        print(all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values())))
        """
    )
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(tmp_path / "hub"),
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("True")


def test_saved_config_names_the_world(checkpoint):
    saved = json.loads((checkpoint / "config.json").read_text())
    assert saved["model_type"] == "theworld" and saved["enable_world"] is True
    assert saved["world_encoder_type"] == "wan"


TINY_COSMOS_VAE = {
    "latent_channels": 4,
    "encoder_block_out_channels": [8, 8, 8, 8],
    "decode_block_out_channels": [8, 8, 8, 8],
    "attention_resolutions": [],
    "resolution": 32,
    "num_layers": 1,
    "patch_size": 4,
    "spatial_compression_ratio": 4,
    "temporal_compression_ratio": 4,
    "latents_mean": None,
    "latents_std": None,
}


def test_cosmos_vae_as_the_world_encoder(gemma_checkpoint, inputs, tmp_path):
    """Cosmos-Predict1's AutoencoderKLCosmos plugs in where the Wan VAE does."""
    vae = AutoencoderKLCosmos.from_config(TINY_COSMOS_VAE)
    vae.save_pretrained(tmp_path / "cosmos1" / "vae")
    fused = TheWorld.from_pretrained(
        gemma_checkpoint, cosmos_model_name=str(tmp_path / "cosmos1"), world_encoder_type="cosmos"
    ).eval()
    assert type(fused.world_encoder.vae) is AutoencoderKLCosmos
    for name, tensor in vae.state_dict().items():
        assert torch.equal(fused.world_encoder.vae.state_dict()[name], tensor), name
    with torch.no_grad():
        fused.dynamics.out.weight.normal_(std=0.1)
    assert not torch.equal(fused(**inputs, num_world_steps=2).logits, fused(**inputs, num_world_steps=0).logits[:, :])
    fused.save_pretrained(tmp_path / "saved")
    again = TheWorld.from_pretrained(tmp_path / "saved").eval()
    assert torch.equal(again(**inputs, num_world_steps=2).logits, fused(**inputs, num_world_steps=2).logits)


def _folder_with_weights(checkpoint, folder, weights: bytes | None = None):
    """`checkpoint`'s config and processor files in `folder`, with `weights` as its model.safetensors."""
    shutil.copytree(checkpoint, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    if weights is not None:
        (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_truncated_weights_are_named_with_the_fix(checkpoint, tmp_path):
    whole = (checkpoint / "model.safetensors").read_bytes()
    for cut in (100, len(whole) - 1):  # inside the header, and inside the tensors
        folder = _folder_with_weights(checkpoint, tmp_path / str(cut), whole[:cut])
        with pytest.raises(OSError, match=r"model\.safetensors is truncated .*; download it again, or save"):
            TheWorld.from_pretrained(folder)


def test_pickle_weights_are_refused_before_a_byte_is_read(checkpoint, tmp_path, monkeypatch):
    """A folder with only pytorch_model.bin (or a pickle named model.safetensors) is refused, and the pickle is
    never opened: its payload would create the sentinel, and no unpickler may even start."""

    def unpickle(*args, **kwargs):
        raise AssertionError("a pickle was read")

    monkeypatch.setattr(torch, "load", unpickle)
    monkeypatch.setattr(pickle, "load", unpickle)
    monkeypatch.setattr(pickle, "Unpickler", unpickle)
    sentinel = tmp_path / "unpickled"
    only_bin = _folder_with_weights(checkpoint, tmp_path / "bin")
    write_hostile_pickle(only_bin / "pytorch_model.bin", sentinel)
    with pytest.raises(OSError, match=r"pickle weights \(pytorch_model\.bin\).*TheWorld loads safetensors only"):
        TheWorld.from_pretrained(only_bin)
    disguised = _folder_with_weights(checkpoint, tmp_path / "disguised")
    write_hostile_pickle(disguised / "model.safetensors", sentinel)
    with pytest.raises(OSError, match=r"is a pickle \(torch\.save\), not safetensors, and is not read"):
        TheWorld.from_pretrained(disguised)
    assert not sentinel.exists()


def test_pickle_weights_load_when_the_caller_opts_in(checkpoint, model, tmp_path):
    """`use_safetensors=False` is transformers' opt-in for trusted files: the way to convert them."""
    folder = _folder_with_weights(checkpoint, tmp_path / "trusted")
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(OSError, match="use_safetensors=False"):
        TheWorld.from_pretrained(folder)
    converted = TheWorld.from_pretrained(folder, use_safetensors=False)
    for name, tensor in model.state_dict().items():
        assert torch.equal(converted.state_dict()[name], tensor), name


def test_unknown_model_fails_at_once_naming_the_models_that_work(monkeypatch):
    """Online (no HF_HUB_OFFLINE) the Hub is asked once, without retries; offline it is not asked at all."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("huggingface_hub").addHandler(handler)
    try:
        with pytest.raises(FileNotFoundError, match="Unknown model 'theworld-test/no-such-model'.*theworld-tiny"):
            TheWorld.from_pretrained("theworld-test/no-such-model")
    finally:
        logging.getLogger("huggingface_hub").removeHandler(handler)
    assert not [record for record in records if record.levelno >= logging.WARNING], "no retries, no retry noise"
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="in the local cache .*one of: gemma-3-270m, theworld-tiny"):
        locate_model("theworld-test/no-such-model")
    with pytest.raises(FileNotFoundError, match="no folder ./nowhere"):
        locate_model("./nowhere")


def test_a_cached_hub_id_loads_from_the_cache_when_the_hub_cannot_be_reached(checkpoint, tmp_path, monkeypatch):
    """Without a network, huggingface_hub would retry each file the cache lacks for half a minute."""
    snapshot = tmp_path / "models--theworld-test--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoint, snapshot)
    (tmp_path / "models--theworld-test--tiny" / "refs").mkdir()
    (tmp_path / "models--theworld-test--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(names, "_ask_hub", lambda *args: ConnectionError("no network"))
    assert locate_model("theworld-test/tiny") == ("theworld-test/tiny", True)
    assert describe_checkpoint("theworld-test/tiny").can_see  # its config read from the cache, the Hub not asked


def test_describe_checkpoint_reads_the_config_alone(checkpoint, tmp_path):
    summary = describe_checkpoint(checkpoint)
    assert (summary.model_type, summary.is_base, summary.can_see) == ("theworld", False, True)
    base = Gemma3TextConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=1)
    base.theworld_is_base_model = True
    base.save_pretrained(tmp_path / "base")  # no weights: describing must not need them
    summary = describe_checkpoint(tmp_path / "base")
    assert (summary.model_type, summary.is_base, summary.can_see) == ("gemma3_text", True, False)


def test_a_folder_without_a_tokenizer_is_named_in_one_line(checkpoint, tmp_path):
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(checkpoint, folder, ignore=shutil.ignore_patterns("tokenizer*"))
    with pytest.raises(FileNotFoundError, match=r"has no tokenizer \(tokenizer\.json or tokenizer\.model\)") as error:
        load_processor(folder)
    assert "\n" not in str(error.value)


def test_safetensors_whose_header_length_begins_like_a_pickle_still_load(tmp_path):
    """A header length whose first byte is 0x80 (pickle's PROTO opcode) belongs to a valid file, not a pickle."""
    file = tmp_path / "model.safetensors"
    for length in range(1, 400):  # the tensor's name sets the header's length
        save_file({"x" * length: torch.zeros(1)}, file)
        if file.read_bytes()[0] == 0x80:
            break
    assert file.read_bytes()[0] == 0x80
    check_weights(tmp_path)
