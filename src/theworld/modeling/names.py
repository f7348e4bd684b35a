"""Named models: the checkpoint shipped inside the package, and the names users may type for it."""

from importlib.resources import files
from pathlib import Path

__all__ = ["DEFAULT_MODEL", "resolve_model_name"]

# The tiny TheWorld trained by this project on ToyWorld, shipped as package data (see theworld.training).
DEFAULT_MODEL = str(files("theworld") / "data" / "theworld-tiny")

_NAMES = {"theworld-tiny": DEFAULT_MODEL, "default": DEFAULT_MODEL}


def resolve_model_name(name: "str | Path") -> str:
    """A documented short name -> its folder; anything else (a path or a Hub id) is returned unchanged."""
    return _NAMES.get(str(name), str(name))
