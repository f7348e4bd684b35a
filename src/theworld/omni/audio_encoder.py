"""The audio encoder: log-mel frames -> audio tokens in the language model's embedding space.

The encoder is Gemma 3n's (transformers' `Gemma3nAudioEncoder`, a USM-style conformer: 4x convolutional
subsampling, chunked local attention, then every `conf_reduction_factor`-th frame kept), at a tiny size for
TheWorld-tiny. The projector maps its width to the language model's, as Gemma 3's vision projector does.
"""

import math

import torch
from torch import nn
from transformers import Gemma3nAudioConfig, Gemma3nAudioEncoder
from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm

__all__ = ["TINY_AUDIO_ENCODER", "AudioEncoder", "audio_token_count"]

# 128 log-mel bins every 10 ms (Gemma 3n's features) -> one audio token per 80 ms.
TINY_AUDIO_ENCODER = {
    "input_feat_size": 128,
    "hidden_size": 128,
    "conf_num_attention_heads": 4,
    "conf_num_hidden_layers": 3,
    "conf_reduction_factor": 2,
    "sscp_conv_channel_size": [32, 16],
}


def audio_token_count(num_mel_frames: int, reduction_factor: int) -> int:
    """How many audio tokens the encoder gives for `num_mel_frames` valid frames: two stride-2 convolutions
    (each keeps ceil(T / 2)), then every `reduction_factor`-th frame."""
    return math.ceil(math.ceil(num_mel_frames / 4) / reduction_factor)


class AudioEncoder(nn.Module):
    def __init__(self, audio_config: dict, text_hidden_size: int):
        super().__init__()
        self.tower = Gemma3nAudioEncoder(Gemma3nAudioConfig(**audio_config))
        hidden = self.tower.config.hidden_size
        self.norm = Gemma3RMSNorm(hidden)
        self.projector = nn.Linear(hidden, text_hidden_size, bias=False)

    def forward(self, input_features: torch.Tensor, input_features_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, mel) features and their (B, T) validity mask -> the valid audio tokens of every clip, in order:
        (total tokens, text hidden)."""
        output = self.tower(input_features, ~input_features_mask.bool())  # the tower's mask marks padding
        valid = ~output.audio_mel_mask
        return self.projector(self.norm(output.last_hidden_state[valid]))
