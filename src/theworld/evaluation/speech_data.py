"""ToyWorld's speech: the espeak-ng voices, recordings of text in them, and their log-mel features.

The hearing stage trains on the training voices and the evaluation asks in them and in one voice training never
hears, so both take them from here (training is the layer above evaluation).
"""

import numpy as np
import torch
from rich.console import Console
from rich.progress import track

from theworld.modeling.processing_theworld import TheWorldProcessor
from theworld.omni.audio import EspeakVoice, synthesize_speech

__all__ = [
    "HELD_OUT_VOICE",
    "TALKER_VOICE",
    "TRAIN_VOICES",
    "TRANSCRIBE_PROMPT",
    "mel_features",
    "normalize_text",
    "pad_features",
    "speak_all",
]

TRAIN_VOICES = (
    EspeakVoice("en-us", 160, 50),
    EspeakVoice("en-gb", 150, 40),
    EspeakVoice("en-us+f3", 170, 60),
    EspeakVoice("en-gb-x-rp+m3", 140, 45),
    EspeakVoice("en-029", 165, 55),
    EspeakVoice("en-gb-scotland+f2", 155, 65),
)
HELD_OUT_VOICE = EspeakVoice("en-us+m7", 175, 35)  # never heard in training: the agreement test's second speaker
TALKER_VOICE = EspeakVoice("en-us", 150, 50)
TRANSCRIBE_PROMPT = "repeat what you heard."

progress_console = Console(stderr=True)


def normalize_text(text: str) -> str:
    """Lower case, without punctuation, single spaces: how transcripts are compared."""
    return " ".join(text.lower().replace("?", " ").replace(".", " ").replace(",", " ").split())


def speak_all(texts: list[str], voices: list[EspeakVoice], description: str = "speaking") -> list[np.ndarray]:
    """espeak-ng speech of each text in its voice, 16 kHz."""
    pairs = list(zip(texts, voices, strict=True))
    return [
        synthesize_speech(text, voice)
        for text, voice in track(pairs, description=description, console=progress_console, transient=True)
    ]


def mel_features(processor: TheWorldProcessor, recordings: list[np.ndarray]) -> list[torch.Tensor]:
    """Each recording's log-mel frames (T, mel), unpadded."""
    features = []
    for audio in recordings:
        out = processor.feature_extractor([audio], return_tensors="pt")
        features.append(out["input_features"][0, : int(out["input_features_mask"][0].sum())].clone())
    return features


def pad_features(clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, mel) right-padded features and their validity mask."""
    features = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    mask = torch.zeros(features.shape[:2], dtype=torch.bool)
    for row, clip in enumerate(clips):
        mask[row, : len(clip)] = True
    return features, mask
