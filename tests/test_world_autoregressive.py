"""The autoregressive world backend: tokenizer, training recipe, shipped checkpoint, physics, CLI."""

import dataclasses
import json

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from theworld.cli.world import world
from theworld.evaluation.world_physics import trajectory_error
from theworld.media import decode_video, to_model_range
from theworld.toyworld import simulate, split_seeds
from theworld.training.recipe import run_stage
from theworld.training.world_ar import (
    WORLD_AR_SETTINGS,
    WorldARSettings,
    _corrupt_context,
    _windows,
    caption_words,
    train_world_ar,
)
from theworld.training.world_ar_decoder import DECODER_SETTINGS, train_decoder
from theworld.training.world_ar_text import TEXT_TO_FRAME_SETTINGS
from theworld.world import WorldRequest, get_backend
from theworld.world.autoregressive import (
    AutoregressiveWorldModel,
    TokenLayout,
    VideoTokenizer,
    load_backend,
    shipped_checkpoint,
)


@pytest.fixture(scope="module")
def backend():
    return get_backend("toyworld")


@pytest.fixture(scope="module")
def clip():
    return simulate(split_seeds("test", 1)[0], 8)


def request(kind, frames=None, **overrides):
    values = dict(
        inference_type=kind,
        prompt="a large red ball moving right",
        num_output_frames=5,
        height=64,
        width=64,
        fps=8,
        seed=0,
        input_frames=frames,
    )
    return WorldRequest(**{**values, **overrides})


def test_tokenizer_round_trip_shapes_and_codes_in_range():
    tokenizer = VideoTokenizer(levels=(8, 5, 5, 5), channels=(8, 8, 8)).eval()
    frames = to_model_range(simulate(0, 3).frames)
    codes = tokenizer.encode(frames)
    assert codes.shape == (3, 8, 8) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < tokenizer.num_codes == 1000
    assert tokenizer.decode(codes).shape == frames.shape
    z = torch.randn(4096, 4, 1, 1) * 4
    q = tokenizer.fsq.quantize(z)
    assert torch.equal(tokenizer.fsq.quantized_from_codes(tokenizer.fsq.codes_from_quantized(q)), q)


@pytest.mark.parametrize("channels,grid", [((16, 32, 64), 8), ((16, 32), 16)])
def test_training_smoke_run_saves_and_loads_back(tmp_path, channels, grid):
    config = WorldARSettings(
        num_clips=2, tokenizer_steps=2, tokenizer_batch=4, transformer_steps=2, transformer_batch=2, hidden=32,
        layers=1, tokenizer_channels=channels, context_frames=3,
    )  # fmt: skip
    folder = tmp_path / "ar"
    train_world_ar(folder, config)
    assert sorted(p.name for p in folder.iterdir()) == ["tokenizer", "transformer", "world_model.json"]
    assert not list(folder.rglob("*.bin")) and list(folder.rglob("*.safetensors"))
    model = AutoregressiveWorldModel.from_pretrained(folder)
    video = load_backend(str(folder)).generate(request("image2world", simulate(0, 1).frames, num_output_frames=3))
    assert video.shape == (3, 64, 64, 3) and video.dtype == np.uint8
    assert model.layout.vocab_size == model.transformer.config.vocab_size
    assert model.layout.tokens_per_frame == grid * grid and model.layout.context_frames == 3  # the code grid asked for
    assert model.encode(simulate(0, 2).frames).shape == (2, grid, grid)


@pytest.mark.parametrize("kind,given,frames", [("text2world", 0, 4), ("image2world", 1, 5), ("video2world", 3, 6)])
def test_shipped_backend_generates_every_inference_type(backend, clip, kind, given, frames):
    inputs = clip.frames[:given] if given else None
    video = backend.generate(request(kind, inputs, num_output_frames=frames))
    assert video.shape == (frames, 64, 64, 3) and video.dtype == np.uint8
    if given:
        assert np.array_equal(video[:given], clip.frames[:given])  # conditioning frames come first, as given


def test_sampling_is_seeded_and_top_p_temperature_matter(backend, clip):
    base = request("image2world", clip.frames[:1], num_output_frames=3, temperature=1.5, top_p=1.0)
    first, again = backend.generate(base), backend.generate(base)
    assert np.array_equal(first, again)
    assert not np.array_equal(
        first, backend.generate(request("image2world", clip.frames[:1], num_output_frames=3, seed=1, temperature=1.5))
    )
    greedy = backend.generate(request("image2world", clip.frames[:1], num_output_frames=3, temperature=0.0))
    assert not np.array_equal(first, greedy)
    narrow = request("image2world", clip.frames[:1], num_output_frames=3, temperature=1.5, top_p=1e-4)
    assert np.array_equal(
        backend.generate(narrow), greedy
    )  # p(top) >= 1/1000 codes > 1e-4: the nucleus is the top token alone


def test_default_decoding_is_predict1s_top_p_at_temperature_1(backend, clip):
    """Predict1's defaults (top_p 0.8, temperature 1.0), whose trajectories beat copying the last frame, are what a
    plain request gets; temperature 0 is greedy."""
    plain = backend.generate(request("image2world", clip.frames[:1], num_output_frames=4))
    predict1 = backend.generate(request("image2world", clip.frames[:1], num_output_frames=4, top_p=0.8, temperature=1))
    assert np.array_equal(plain, predict1)
    assert not np.array_equal(
        plain, backend.generate(request("image2world", clip.frames[:1], num_output_frames=4, seed=1))
    )
    greedy = backend.generate(request("image2world", clip.frames[:1], num_output_frames=4, temperature=0.0))
    assert not np.array_equal(plain, greedy)
    assert np.array_equal(
        greedy, backend.generate(request("image2world", clip.frames[:1], num_output_frames=4, top_p=0.8, temperature=0))
    )


def test_guidance_is_classifier_free_guidance_on_the_prompt(backend, clip):
    """Every code of a guided greedy frame is the argmax of transformers' guided scores, where the same frames
    without the prompt are the unconditional input; guidance 1, or no prompt, changes nothing."""
    model, layout = backend.model, backend.model.layout
    prompt, scale = "a small red ball at rest.", 3.0
    made = []
    original = model.decode
    model.decode = lambda codes, *args: made.append(codes) or original(codes, *args)
    try:
        model.predict(clip.frames[:1], 1, prompt=prompt, temperature=0.0, guidance=scale)
    finally:
        model.decode = original
    frames = layout.frame_ids(torch.cat([model.encode(clip.frames[:1]).cpu(), made[0]])).tolist()
    bos, codes = [layout.special("[BOS]")], made[0].flatten()
    with torch.no_grad():  # the scores at the positions that predict the new frame's codes
        conditional, unconditional = (
            model.transformer(input_ids=torch.tensor([ids])).logits[0, -len(codes) - 1 : -1, : layout.num_codes]
            for ids in (bos + layout.text_ids(prompt) + frames, bos + frames)
        )
    conditional, unconditional = conditional.log_softmax(-1), unconditional.log_softmax(-1)
    guided = unconditional + scale * (conditional - unconditional)
    assert torch.equal(guided.argmax(-1), codes)
    assert not torch.equal(conditional.argmax(-1), codes)  # guidance made a difference
    ask = dict(num_output_frames=3, top_p=0.8, temperature=1.0)
    plain = backend.generate(request("image2world", clip.frames[:1], **ask))
    assert np.array_equal(plain, backend.generate(request("image2world", clip.frames[:1], guidance=1.0, **ask)))
    assert not np.array_equal(plain, backend.generate(request("image2world", clip.frames[:1], guidance=scale, **ask)))
    silent = request("image2world", clip.frames[:1], prompt=None, **ask)
    assert np.array_equal(backend.generate(silent), backend.generate(dataclasses.replace(silent, guidance=scale)))


def test_shipped_checkpoint_is_small_and_safetensors_only():
    files = [p for p in shipped_checkpoint().rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".json", ".safetensors"}
    assert sum(p.stat().st_size for p in files) < 16 * 2**20  # it ships inside the package


def test_resolution_and_longer_than_context_outputs(backend, clip):
    video = backend.generate(request("image2world", clip.frames[:1], num_output_frames=9, height=96, width=80))
    assert video.shape == (9, 96, 80, 3)


@pytest.mark.slow
@pytest.mark.parametrize("decoding", [dict(temperature=0.0), dict(seed=0), dict(seed=1)], ids=["greedy", "s0", "s1"])
def test_shipped_model_beats_copying_the_last_frame(backend, decoding):
    """Greedy, and sampled at Predict1's defaults (top_p 0.8, temperature 1.0) with two seeds."""

    def predict(frames, steps):
        return backend.model.predict(frames, steps, **{"seed": 0, "top_p": 0.8, "temperature": 1.0, **decoding})

    report = trajectory_error(predict, num_clips=8, context=2, steps=4)
    assert np.mean(report.model) < np.mean(report.copy_last), report.table()
    assert report.model[-1] < report.copy_last[-1], report.table()


def test_cli_image2world_with_the_default_model(tmp_path, clip):
    Image.fromarray(clip.frames[2]).save(tmp_path / "start.png")
    spec = {"name": "ball", "prompt": "a ball", "inference_type": "image2world", "input_path": "start.png"}
    (tmp_path / "i2w.json").write_text(json.dumps(spec))
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(world)
    result = CliRunner().invoke(app, ["-i", str(tmp_path / "i2w.json"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    sample = tmp_path / "out" / "ball"
    assert (sample / "ball.mp4").stat().st_size > 0 and (sample / "ball.gif").stat().st_size > 0
    assert len(list((sample / "frames").glob("*.png"))) == 8
    assert json.loads((sample / "record.json").read_text())["backend"] == "toyworld"


@pytest.fixture(scope="module")
def with_decoder(tmp_path_factory):
    """A smoke-sized autoregressive model with a smoke-sized diffusion decoder (the two stages, in order)."""
    folder = tmp_path_factory.mktemp("ar") / "model"
    train_world_ar(folder, WORLD_AR_SETTINGS["smoke"])
    train_decoder(folder, DECODER_SETTINGS["smoke"])
    return folder


def test_diffusion_decoder_stage_saves_safetensors_and_decodes_when_asked(with_decoder, clip):
    saved = {
        p.relative_to(with_decoder / "diffusion_decoder").parts[0]
        for p in with_decoder.rglob("*")
        if p.is_file() and "diffusion_decoder" in p.parts
    }
    assert saved == {"unet", "scheduler", "vae"}
    assert not list(with_decoder.rglob("*.bin"))
    on, off = load_backend(str(with_decoder)), load_backend(str(with_decoder), diffusion_decoder=False)
    assert on.model.use_diffusion_decoder and not off.model.use_diffusion_decoder
    ask = request("image2world", clip.frames[:1], num_output_frames=3)
    decoded = on.generate(ask)
    assert np.array_equal(decoded, on.generate(ask))  # the decoder's noise is seeded by the request
    plain = off.generate(ask)
    assert decoded.shape == plain.shape == (3, 64, 64, 3) and not np.array_equal(decoded[1:], plain[1:])
    # Turned off, the frames are the tokenizer's own decoding, as from a model without a decoder
    bare = AutoregressiveWorldModel.from_pretrained(with_decoder)
    bare.diffusion_decoder, bare.use_diffusion_decoder = None, False
    assert np.array_equal(plain[1:], bare.predict(clip.frames[:1], 2, seed=0, top_p=0.8, temperature=1.0))


def test_cli_diffusion_decoder_flags(with_decoder, clip, tmp_path):
    Image.fromarray(clip.frames[0]).save(tmp_path / "start.png")
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(world)
    common = [
        "--checkpoint_dir",
        str(with_decoder.parent),
        "--ar_model_dir",
        with_decoder.name,
        "--input_type",
        "image",
        "--input_image_or_video_path",
        str(tmp_path / "start.png"),
        "--video_save_folder",
        str(tmp_path),
    ]
    runs = {}
    for name, extra in (
        ("on", ["--diffusion-decoder", "--offload_diffusion_decoder"]),
        ("off", ["--disable_diffusion_decoder"]),
    ):
        result = CliRunner().invoke(app, [*common, "--video_save_name", name, *extra])
        assert result.exit_code == 0, result.output
        runs[name] = decode_video(tmp_path / f"{name}.mp4", lambda count: range(count))
    assert runs["on"].shape == runs["off"].shape and not np.array_equal(runs["on"], runs["off"])


def test_diffusion_decoder_stage_needs_an_autoregressive_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `theworld train world-ar"):
        run_stage("world-ar-decoder", tmp_path, DECODER_SETTINGS["smoke"])


def test_refine_pass_trains_on_captions_and_first_frames(tmp_path):
    settings = dataclasses.replace(WORLD_AR_SETTINGS["smoke"], refine_steps=2, text_frames=2)
    metrics = train_world_ar(tmp_path / "ar", settings)
    assert np.isfinite(metrics["refine_loss"])
    assert AutoregressiveWorldModel.from_pretrained(tmp_path / "ar").layout.words


def test_context_noise_replaces_context_codes_only_and_leaves_labels_true():
    """Exposure-bias training: a share of each window's frame codes (up to `context_noise`) is replaced by random
    codes; the caption, the specials and the labels (the true codes to predict) are kept."""
    import random

    layout = TokenLayout(1000, 64, 64, 6, tuple(caption_words()))
    codes = torch.randint(1000, (4, 12, 8, 8), generator=torch.Generator().manual_seed(0))
    captions = [["a large red ball moving right."] * 12] * 4
    settings = dataclasses.replace(WORLD_AR_SETTINGS["full"], transformer_batch=64, context_noise=0.4)
    ids, mask, labels = _windows(codes, captions, layout, settings, random.Random(0))
    noisy = _corrupt_context(ids, layout, settings, torch.Generator().manual_seed(0))
    is_code = ids < layout.num_codes
    changed = noisy != ids
    assert not changed[~is_code].any() and noisy.shape == ids.shape
    assert 0.15 < changed[is_code].float().mean() < 0.25  # E[U(0, 0.4)] = 0.2 of the codes
    per_row = changed.sum(1).float() / is_code.sum(1)
    assert per_row.min() < 0.05 and per_row.max() > 0.3  # the share is drawn per window
    assert torch.equal(labels[labels != -100], ids[labels != -100])  # labels are the true codes
    unchanged = dataclasses.replace(settings, context_noise=0.0)
    assert torch.equal(_corrupt_context(ids, layout, unchanged, torch.Generator()), ids)


@pytest.fixture(scope="module")
def with_text_to_frame(with_decoder, tmp_path_factory):
    """The smoke model with its decoder, and a smoke-sized text-to-frame model trained into a copy of it."""
    import shutil

    folder = tmp_path_factory.mktemp("ar-text") / "model"
    shutil.copytree(with_decoder, folder)
    metrics = run_stage("world-ar-text", folder, TEXT_TO_FRAME_SETTINGS["smoke"])
    assert np.isfinite(metrics["text_to_frame_loss"])
    return folder


def test_text_to_frame_stage_saves_safetensors_and_draws_text2worlds_first_frame(with_text_to_frame):
    saved = {p.relative_to(with_text_to_frame / "text_to_frame").parts[0] for p in
             (with_text_to_frame / "text_to_frame").rglob("*") if p.is_file()}  # fmt: skip
    assert saved == {"unet", "text_encoder", "scheduler"} and not list(with_text_to_frame.rglob("*.bin"))
    backend = load_backend(str(with_text_to_frame))
    model = backend.model
    assert model.text_to_frame is not None
    prompt = "a large red ball moving right."
    video = backend.generate(request("text2world", prompt=prompt, num_output_frames=3, seed=5))
    assert video.shape == (3, 64, 64, 3)
    first = model.draw_first_frame(prompt, seed=5)
    assert np.array_equal(video[:1], first)  # the drawn frame opens the video, and the transformer continues it
    assert np.array_equal(video[1:], model.predict(first, 2, prompt=prompt, seed=5, top_p=0.8, temperature=1.0))
    assert not np.array_equal(first, model.draw_first_frame(prompt, seed=6))  # seeded by the request
    assert not np.array_equal(first, model.draw_first_frame("a small blue square at rest.", seed=5))
    assert np.array_equal(first, model.draw_first_frame(prompt, seed=5, guidance=model.text_to_frame.guidance))
    assert not np.array_equal(first, model.draw_first_frame(prompt, seed=5, guidance=1.0))
    steps = []
    model.predict(None, 3, prompt=prompt, progress=lambda done, total: steps.append((done, total)))
    assert steps[0] == (1, 3) and steps[-1] == (3, 3)


def test_text_to_frame_settings_build_the_model_they_name(with_decoder, tmp_path):
    """The stage's architecture settings reach the saved model, and the shape-weighted loss trains."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(with_decoder, folder)
    settings = dataclasses.replace(
        TEXT_TO_FRAME_SETTINGS["smoke"], text_width=32, text_layers=3, attention_layers=2,
        full_grid_cross_attention=True, foreground_weight=10.0, one_token_per_object=False,
    )  # fmt: skip
    metrics = run_stage("world-ar-text", folder, settings)
    assert np.isfinite(metrics["text_to_frame_loss"])
    drawer = AutoregressiveWorldModel.from_pretrained(folder).text_to_frame
    assert drawer.text_encoder.config.num_layers == 3 and drawer.unet.config.cross_attention_dim == 32
    assert drawer.unet.config.down_block_types == ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
    assert drawer.unet.config.transformer_layers_per_block == 2
    tokens, mask = drawer.encode_prompts(["a red ball, a blue square."])  # one token per word
    assert tokens.shape[:2] == (1, 8) and mask.sum() == 8


def test_text_to_frame_stage_needs_the_diffusion_decoder(tmp_path):
    train_world_ar(tmp_path, WORLD_AR_SETTINGS["smoke"])
    with pytest.raises(FileNotFoundError, match="run `theworld train world-ar-decoder"):
        run_stage("world-ar-text", tmp_path, TEXT_TO_FRAME_SETTINGS["smoke"])


def test_decoder_stage_sharpens_the_vae_decoder_and_keeps_its_encoder(with_decoder):
    """The denoiser's targets are the encoder's latents, so only the VAE's decoder may change."""
    from theworld.training.world_ar_decoder import toyworld_vae

    original = toyworld_vae().state_dict()
    saved = AutoregressiveWorldModel.from_pretrained(with_decoder).diffusion_decoder.vae.state_dict()
    changed = {name.split(".")[0] for name, value in saved.items() if not torch.equal(value, original[name])}
    assert changed == {"decoder", "post_quant_conv"}


def test_shape_pixels_cover_each_shape_and_neither_background_nor_floor():
    """The pixels the VAE sharpening and the text-to-frame loss weight up: every shape's centre, and no pixel of
    the empty corner or of the floor."""
    from theworld.toyworld.physics import floor_y
    from theworld.training.world_ar_decoder import shape_pixels

    clip = simulate(3, 4)
    shapes = shape_pixels(to_model_range(clip.frames))[:, 0]
    for frame, states in enumerate(clip.states):
        for state in states:
            assert shapes[frame, int(state.y), int(state.x)] == 1
    assert not shapes[:, int(floor_y(64)) :].any()
    assert 0 < shapes.mean() < 0.5


def test_shipped_text2world_draws_what_the_prompt_names(backend):
    """Held-out captions' objects, read (colour and kind) in text2world's first frame: most of them, where a
    random scene (no prompt) has few."""
    from theworld.evaluation.world_objects import ObjectReading, prompt_following

    assert backend.model.text_to_frame is not None
    following = prompt_following(backend.model, ObjectReading(), clips=8, frames=1, seed=0, top_p=0.8)
    assert following["prompt"] >= 0.7 and following["no prompt"] <= 0.2, following


def test_text_to_frame_reads_a_bounded_prompt(backend):
    """Unknown words are skipped, no known word is the empty prompt, and a huge prompt is cut (as T5 truncates)."""
    from theworld.world.autoregressive.text_to_frame import EMPTY, MAX_WORDS

    drawer = backend.model.text_to_frame
    ids, mask = drawer.word_ids(["a red ball " * 10_000, "zzz qqq", "a RED ball!"])
    assert ids.shape == (3, MAX_WORDS) and mask.sum(1).tolist() == [MAX_WORDS, 1, 3]
    assert ids[1, 0] == EMPTY and torch.equal(ids[2, :3], ids[0, :3])
    frame = backend.model.draw_first_frame("a red ball " * 10_000, seed=0)
    assert frame.shape == (1, 64, 64, 3)


def test_one_token_per_object_reads_each_named_object_on_its_own(with_decoder, tmp_path):
    """With `one_token_per_object`, a prompt is one token per object it names, and an object's token is the same
    whatever else the prompt names (its colour cannot be bound to another object); the choice is saved."""
    import shutil

    from theworld.world.autoregressive.text_to_frame import object_phrases, word_indices

    folder = tmp_path / "model"
    shutil.copytree(with_decoder, folder)
    assert TEXT_TO_FRAME_SETTINGS["smoke"].one_token_per_object  # as the full settings, which made the shipped model
    run_stage("world-ar-text", folder, TEXT_TO_FRAME_SETTINGS["smoke"])
    model = AutoregressiveWorldModel.from_pretrained(folder)
    drawer, words = model.text_to_frame, model.text_to_frame.words
    assert model.draw_first_frame("a red ball and a blue square", seed=0).shape == (1, 64, 64, 3)
    phrases = object_phrases(word_indices("a large red ball moving right and up, a small blue square.", words), words)
    assert [[words[i] for i in p] for p in phrases] == [
        ["a", "large", "red", "ball", "moving", "right", "and", "up"], ["a", "small", "blue", "square"]
    ]  # fmt: skip
    tokens, mask = drawer.encode_prompts(["a red ball and a blue square", "a red ball.", None])
    assert tokens.shape[:2] == (3, 2) and mask.tolist() == [[1, 1], [1, 0], [1, 0]]
    assert torch.allclose(tokens[0, 0], tokens[1, 0], atol=1e-6)
    assert not torch.allclose(tokens[0, 1], tokens[1, 0]) and not torch.allclose(tokens[2, 0], tokens[1, 0])
