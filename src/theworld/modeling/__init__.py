"""The fused model: configuration, world encoder, dynamics, projector, and TheWorld itself.

Each public name imports its module on first use (lazy_loader), so reading a model's name (`names`) costs no
torch. The modules that define TheWorld's config, model and processor register them with transformers' Auto
classes; any name taken from this package imports all three first (`register`), so `AutoConfig`,
`AutoModelForImageTextToText` and `AutoProcessor` then load TheWorld checkpoints.
"""

from functools import cache
from importlib import import_module
from typing import Any

import lazy_loader

_lazy_getattr, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "configuration_theworld": ["TheWorldConfig"],
        "modeling_theworld": ["TheWorld"],
        "names": ["DEFAULT_MODEL", "resolve_model_name"],
        "processing_theworld": ["TheWorldProcessor"],
    },
)
__all__ = [*__all__, "register"]


@cache
def register() -> None:
    """Register TheWorld's config, model and processor with transformers' Auto classes (their modules do it)."""
    for module in ("configuration_theworld", "modeling_theworld", "processing_theworld"):
        import_module(f"{__name__}.{module}")


def __getattr__(name: str) -> Any:
    value = _lazy_getattr(name)
    register()
    return value
