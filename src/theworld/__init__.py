"""TheWorld: Gemma 3 fused with a Cosmos-style world model, with the Hugging Face API.

Importing the package registers TheWorld with transformers' Auto classes, so `AutoConfig`,
`AutoModelForImageTextToText` and `AutoProcessor` load TheWorld checkpoints.
"""

from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor
from transformers.conversion_mapping import (
    get_checkpoint_conversion_mapping,
    register_checkpoint_conversion_mapping,
)

from theworld.modeling import DEFAULT_MODEL, TheWorld, TheWorldConfig
from theworld.modeling.processing_theworld import TheWorldProcessor
from theworld.omni.talker import Talker, TalkerConfig

__all__ = ["DEFAULT_MODEL", "TheWorld", "TheWorldConfig"]
__version__ = "0.1.0"

AutoConfig.register("theworld", TheWorldConfig)
AutoModelForImageTextToText.register(TheWorldConfig, TheWorld)
AutoProcessor.register(TheWorldConfig, TheWorldProcessor)  # Gemma3Processor folders still load as Gemma 3's
AutoConfig.register("theworld_talker", TalkerConfig)
AutoModelForCausalLM.register(TalkerConfig, Talker)
# Gemma 3 checkpoints on the Hub use the older key layout (language_model.model.*): map it as Gemma 3 does.
register_checkpoint_conversion_mapping("theworld", get_checkpoint_conversion_mapping("gemma3"))
