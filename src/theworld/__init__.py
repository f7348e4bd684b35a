"""TheWorld: Gemma 3 fused with a Cosmos-style world model, with the Hugging Face API.

The package imports lazily, so that `theworld --help` starts at once: the first use of a public name
(`TheWorld`, `DEFAULT_MODEL`, ...) imports the model and registers it with transformers' Auto classes, so
`AutoConfig`, `AutoModelForImageTextToText` and `AutoProcessor` then load TheWorld checkpoints. `register()` does
the same explicitly, for code that goes through the Auto classes alone.
"""

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from theworld.modeling import DEFAULT_MODEL, TheWorld, TheWorldConfig

__all__ = ["DEFAULT_MODEL", "TheWorld", "TheWorldConfig", "register"]
__version__ = "0.1.0"

# Each public name and the module that defines it; importing any of them registers everything first.
_LAZY = {
    "DEFAULT_MODEL": "theworld.modeling.names",
    "TheWorld": "theworld.modeling.modeling_theworld",
    "TheWorldConfig": "theworld.modeling.configuration_theworld",
    "TheWorldProcessor": "theworld.modeling.processing_theworld",
    "Talker": "theworld.omni.talker",
    "TalkerConfig": "theworld.omni.talker",
}


@cache
def register() -> None:
    """Register TheWorld (config, model, processor) and its talker with transformers' Auto classes; once."""
    import theworld.omni.talker  # noqa: F401 - defining the talker registers it
    from theworld.modeling import register as register_model

    register_model()


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'theworld' has no attribute {name!r}")
    register()
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
