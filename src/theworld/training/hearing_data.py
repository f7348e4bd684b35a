"""The hearing stage's speech: espeak-ng recordings of the training questions and answers, as log-mel features.

Synthesis and vocoding take minutes, so `train all` makes them once, in a second process beside the world stages,
and the hearing stage reads them back from the folder it wrote them to.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from theworld.evaluation.speech_data import mel_features
from theworld.modeling.processing_theworld import TheWorldProcessor
from theworld.toyworld import make_examples
from theworld.training import speech
from theworld.training.settings import RecipeSettings

__all__ = ["SpeechData", "hearing_examples", "make_speech_data"]


@dataclass
class SpeechData:
    """Every training question and answer in every training voice (`texts`, `features`), and what the ear's CTC
    steps hear besides (`extra_texts`, `extra_features`: the answers through the talker's vocoder and random word
    strings)."""

    texts: list[str]
    features: list[torch.Tensor]
    extra_texts: list[str]
    extra_features: list[torch.Tensor]

    @property
    def ear_texts(self) -> list[str]:
        return self.texts + self.extra_texts

    @property
    def ear_features(self) -> list[torch.Tensor]:
        return self.features + self.extra_features

    def save(self, path: Path) -> None:
        tensors = {f"features.{i}": f for i, f in enumerate(self.features)}
        tensors.update({f"extra_features.{i}": f for i, f in enumerate(self.extra_features)})
        texts = json.dumps({"texts": self.texts, "extra_texts": self.extra_texts})
        save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"texts": texts})

    @classmethod
    def load(cls, path: Path) -> "SpeechData":
        with safe_open(path, "pt") as file:
            texts = json.loads(file.metadata()["texts"])
            features = [file.get_tensor(f"features.{i}") for i in range(len(texts["texts"]))]
            extra = [file.get_tensor(f"extra_features.{i}") for i in range(len(texts["extra_texts"]))]
        return cls(texts["texts"], features, texts["extra_texts"], extra)


def hearing_examples(settings: RecipeSettings) -> list:
    """The training questions the hearing stage asks, typed and spoken."""
    return make_examples("train", settings.speech_clips, questions_per_clip=settings.questions_per_clip)


def make_speech_data(processor: TheWorldProcessor, examples: list, settings: RecipeSettings) -> SpeechData:
    """Speak every distinct question of `examples` in every training voice, and the answers too, for "repeat what
    you heard"."""
    sentences = sorted({e.question for e in examples}) + sorted({e.answer for e in examples})
    texts, recordings = speech.in_training_voices(sentences, "speaking the training set")
    extra_texts, extra_features = [], []
    if settings.ear_vocoded_answers:
        # The talker speaks through a Griffin-Lim vocoder; an ear that only heard espeak-ng mishears its answers.
        answer_set = {e.answer for e in examples}
        spoken_answers = [i for i, text in enumerate(texts) if text in answer_set]
        extra_texts += [texts[i] for i in spoken_answers]
        extra_features += mel_features(processor, speech.vocoded([recordings[i] for i in spoken_answers]))
    features = mel_features(processor, recordings)
    if settings.ear_word_strings:
        strings = speech.word_strings(sentences, settings.ear_word_strings, np.random.default_rng([settings.seed, 3]))
        string_texts, string_recordings = speech.in_training_voices(strings, "speaking word strings")
        extra_texts += string_texts
        extra_features += mel_features(processor, string_recordings)
    return SpeechData(texts, features, extra_texts, extra_features)
