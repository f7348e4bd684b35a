"""The audio encoder: log-mel frames -> audio tokens in the language model's embedding space.

The encoder is Gemma 3n's (transformers' `Gemma3nAudioEncoder`, a USM-style conformer: 4x convolutional
subsampling, chunked local attention, then every `conf_reduction_factor`-th frame kept), at a tiny size for
TheWorld-tiny.

Each audio token is what the language model would read if the words had been typed: a CTC head (the
`transcriber`) says which text token is being spoken at that moment, and the audio token is the expected
word embedding under that distribution (blank = `<pad>`), plus a linear projection
of the acoustics for what words do not carry. Speech LLMs that bridge with CTC posteriors do the same; it
lets a tiny model trained for minutes on CPU hear its typed vocabulary instead of learning a new one. With
`"acoustic_projection": false` in the audio config the projection is left out (LegoSLM, Ma et al. 2025): an
audio token is then only the expected word embedding, so a confidently heard word reads as its typed twin.

With `ctc_compression` in the audio config, the frames of each word are merged into one token (CTC
compression, Gaido et al. 2021): every run of frames with the same greedy non-blank label becomes the mean of
their tokens, blank frames are dropped, and the merged tokens end the audio block, after `<pad>` readings for
the frames they freed. A spoken question then reads like its typed twin: the same number of word tokens, the
same distances to the answer. With `hide_ctc_fillers` as well, the `<pad>` readings are masked out of attention
and take no positions, so the spoken prompt reads exactly like the typed one.
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


def _compress(
    tokens: torch.Tensor, labels: torch.Tensor, blank: int, filler: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One clip's (T, H) tokens with their (T,) greedy labels -> (T, H) tokens and their (T,) labels: each run of
    one non-blank label merged into its mean, right-aligned after `filler` rows (labelled `blank`).
    Hand-written: a few lines of index arithmetic, and no library in our stack compresses CTC frames."""
    new_run = torch.ones_like(labels, dtype=torch.bool)
    new_run[1:] = labels[1:] != labels[:-1]
    run = new_run.cumsum(0) - 1
    spoken = labels != blank
    _, which, frames = torch.unique_consecutive(run[spoken], return_inverse=True, return_counts=True)
    merged = tokens.new_zeros(len(frames), tokens.shape[1]).index_add(0, which, tokens[spoken])
    merged = merged / frames.unsqueeze(1).to(tokens.dtype)
    heard = labels[spoken][torch.cumsum(frames, 0) - 1]  # one label per merged run
    freed = len(labels) - len(frames)
    return torch.cat([filler.expand(freed, -1), merged]), torch.cat([labels.new_full((freed,), blank), heard])


def audio_token_count(num_mel_frames: int, reduction_factor: int) -> int:
    """How many audio tokens the encoder gives for `num_mel_frames` valid frames: two stride-2 convolutions
    (each keeps ceil(T / 2)), then every `reduction_factor`-th frame."""
    return math.ceil(math.ceil(num_mel_frames / 4) / reduction_factor)


class AudioEncoder(nn.Module):
    def __init__(self, audio_config: dict, text_hidden_size: int, text_vocab_size: int):
        super().__init__()
        audio_config = dict(audio_config)
        self.ctc_compression = bool(audio_config.pop("ctc_compression", False))
        # The model masks the fillers compression leaves out of attention and positions (`TheWorld._embed_inputs`).
        self.hide_fillers = self.ctc_compression and bool(audio_config.pop("hide_ctc_fillers", False))
        acoustic_projection = bool(audio_config.pop("acoustic_projection", True))
        self.tower = Gemma3nAudioEncoder(Gemma3nAudioConfig(**audio_config))
        hidden = self.tower.config.hidden_size
        self.norm = Gemma3RMSNorm(hidden)
        self.transcriber = nn.Linear(hidden, text_vocab_size)
        self.text_hidden_size = text_hidden_size
        self.projector = None
        if acoustic_projection:
            self.add_projector(zero=False)

    def add_projector(self, zero: bool = True) -> None:
        """The linear projection of the acoustics added to every audio token. Added to a trained ear, it starts
        at zero (`zero`), so the ear's tokens are what they were until it trains."""
        self.projector = nn.Linear(self.transcriber.in_features, self.text_hidden_size, bias=False)
        self.projector.to(self.transcriber.weight)
        if zero:
            nn.init.zeros_(self.projector.weight)

    def encode(
        self, input_features: torch.Tensor, input_features_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, mel) features and their (B, T) validity mask -> (B, T', hidden) normalised encoder states and
        their (B, T') validity mask."""
        output = self.tower(input_features, ~input_features_mask.bool())  # the tower's mask marks padding
        return self.norm(output.last_hidden_state), ~output.audio_mel_mask

    def forward(
        self,
        input_features: torch.Tensor,
        input_features_mask: torch.Tensor,
        word_embeddings: nn.Embedding,
        return_labels: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The valid audio tokens of every clip, in order: (total tokens, text hidden). `word_embeddings` is the
        language model's (scaled) input embedding. With `return_labels`, also each token's greedy transcription
        (total tokens,): the word it hears, or the blank."""
        states, valid = self.encode(input_features, input_features_mask)
        logits = self.transcriber(states)
        scale = getattr(word_embeddings, "embed_scale", 1.0)
        tokens = logits.softmax(-1).to(word_embeddings.weight.dtype) @ word_embeddings.weight * scale
        if self.projector is not None:
            tokens = tokens + self.projector(states)
        labels = logits.argmax(-1)
        if not self.ctc_compression:
            return (tokens[valid], labels[valid]) if return_labels else tokens[valid]
        blank = word_embeddings.padding_idx
        if blank is None:
            raise ValueError("CTC compression needs word embeddings with a padding_idx: <pad> is the CTC blank")
        filler = word_embeddings.weight[blank] * scale  # what a typed <pad> reads as
        lengths = valid.sum(1).tolist()  # clips are padded on the right: the valid frames come first
        clips = zip(tokens, labels, lengths, strict=True)
        merged, heard = zip(*[_compress(clip[:n], said[:n], blank, filler) for clip, said, n in clips], strict=True)
        return (torch.cat(merged), torch.cat(heard)) if return_labels else torch.cat(merged)
