"""The fused model: configuration, world encoder, dynamics, projector, and TheWorld itself."""

from theworld.modeling.configuration_theworld import TheWorldConfig
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.names import DEFAULT_MODEL, resolve_model_name

__all__ = ["DEFAULT_MODEL", "TheWorld", "TheWorldConfig", "resolve_model_name"]
