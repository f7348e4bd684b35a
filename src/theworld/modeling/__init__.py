"""The fused model: configuration, world encoder, dynamics, projector, and TheWorld itself.

Importing this package registers TheWorld with transformers' Auto classes, so `AutoConfig`,
`AutoModelForImageTextToText` and `AutoProcessor` load TheWorld checkpoints however the model was reached.
"""

from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping

from theworld.modeling.configuration_theworld import TheWorldConfig
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.names import DEFAULT_MODEL, resolve_model_name
from theworld.modeling.processing_theworld import TheWorldProcessor

__all__ = ["DEFAULT_MODEL", "TheWorld", "TheWorldConfig", "TheWorldProcessor", "resolve_model_name"]

AutoConfig.register("theworld", TheWorldConfig)
AutoModelForImageTextToText.register(TheWorldConfig, TheWorld)
AutoProcessor.register(TheWorldConfig, TheWorldProcessor)  # Gemma3Processor folders load as Gemma 3's
# Gemma 3 checkpoints on the Hub use the older key layout (language_model.model.*): map it as Gemma 3 does.
register_checkpoint_conversion_mapping("theworld", get_checkpoint_conversion_mapping("gemma3"))
