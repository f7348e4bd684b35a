"""`theworld eval --speech`: does a model hear and speak? Spoken questions against their typed twins, the ear's
transcripts, and the round trip of every answer: talker speech -> speech-in path -> text."""

import jiwer
import numpy as np
import torch
from PIL import Image

from theworld.evaluation.answers import answer_chats, user_turn
from theworld.evaluation.speech_data import (
    HELD_OUT_VOICE,
    TALKER_VOICE,
    TRAIN_VOICES,
    TRANSCRIBE_PROMPT,
    mel_features,
    normalize_text,
    pad_features,
    speak_all,
)
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.processing_theworld import TheWorldProcessor
from theworld.omni.talker import Speaker
from theworld.toyworld import ANSWER_VOCAB, COLOURS, KINDS, make_examples
from theworld.toyworld.language import MAX_STEPS

__all__ = [
    "content_word_accuracy",
    "ctc_transcribe",
    "evaluate_speech",
    "round_trip",
    "transcribe",
    "voice_sets",
    "word_error_rate",
]


@torch.no_grad()
def ctc_transcribe(model: TheWorld, tokenizer, features: list[torch.Tensor], batch_size: int = 64) -> list[str]:
    """The transcriber's own greedy CTC reading of each recording (no language model): the ear's quality."""
    encoder, blank = model.audio_encoder, model.config.text_config.pad_token_id
    texts = []
    for start in range(0, len(features), batch_size):
        clips, mask = pad_features(features[start : start + batch_size])
        states, valid = encoder.encode(clips.to(model.dtype), mask)
        best = encoder.transcriber(states).argmax(-1)
        for row, length in zip(best, valid.sum(1).tolist(), strict=True):
            ids = torch.unique_consecutive(row[:length])
            texts.append(tokenizer.decode(ids[ids != blank]))
    return texts


def transcribe(model: TheWorld, processor: TheWorldProcessor, recordings: list[np.ndarray]) -> list[str]:
    """What the speech-in path heard: the model asked to repeat each recording."""
    chats = [
        user_turn({"type": "audio", "audio": audio}, {"type": "text", "text": TRANSCRIBE_PROMPT})
        for audio in recordings
    ]
    return answer_chats(model, processor, chats)


def evaluate_speech(
    model: TheWorld,
    processor: TheWorldProcessor,
    speaker: Speaker | None,
    num_clips: int = 100,
    questions_per_clip: int = 4,
) -> dict:
    """Held-out (test split) figures: spoken vs typed answers (agreement, accuracy) for a training voice and
    an unseen one, transcription of the questions, and the round trip of every answer the model gives:
    talker speech -> speech-in path -> text."""
    examples = make_examples("test", num_clips, questions_per_clip=questions_per_clip)
    questions = [e.question for e in examples]
    steps = model.config.num_world_steps
    typed = answer_chats(
        model,
        processor,
        [
            user_turn({"type": "image", "image": Image.fromarray(e.image)}, {"type": "text", "text": e.question})
            for e in examples
        ],
        num_world_steps=steps,
    )
    typed_accuracy = _mean(t == e.answer for t, e in zip(typed, examples, strict=True))
    report: dict = {"questions": len(examples), "typed_accuracy": typed_accuracy}
    for name, voice_list in voice_sets(len(examples)).items():
        recordings = speak_all(questions, voice_list, f"speaking ({name})")
        spoken = answer_chats(
            model,
            processor,
            [
                user_turn({"type": "image", "image": Image.fromarray(e.image)}, {"type": "audio", "audio": audio})
                for e, audio in zip(examples, recordings, strict=True)
            ],
            num_world_steps=steps,
        )
        heard = transcribe(model, processor, recordings)
        ear = ctc_transcribe(model, processor.tokenizer, mel_features(processor, recordings))
        report[name] = {
            "agreement_with_typed": _mean(s == t for s, t in zip(spoken, typed, strict=True)),
            "spoken_accuracy": _mean(s == e.answer for s, e in zip(spoken, examples, strict=True)),
            "question_transcription_exact": _mean(
                normalize_text(h) == normalize_text(e.question) for h, e in zip(heard, examples, strict=True)
            ),
            "ear_alone_transcription_exact": _mean(
                normalize_text(h) == normalize_text(e.question) for h, e in zip(ear, examples, strict=True)
            ),
            # Exact sentences hide progress on a tiny ear; the share of words it gets wrong shows it.
            "question_word_error_rate": round(word_error_rate(questions, heard), 4),
            "ear_alone_word_error_rate": round(word_error_rate(questions, ear), 4),
            # The template words are easy; what the answer hangs on is which colour, shape and step count.
            "question_content_words_right": content_word_accuracy(questions, heard),
            "ear_alone_content_words_right": content_word_accuracy(questions, ear),
        }
    if speaker is not None:
        report["round_trip"] = round_trip(model, processor, speaker)
    return report


def round_trip(model: TheWorld, processor: TheWorldProcessor, speaker: Speaker) -> dict:
    """Every answer the model gives, spoken by the talker and heard back by the speech-in path; espeak-ng's
    own recordings of the answers are the reference."""
    answers = sorted({a for vocab in ANSWER_VOCAB.values() for a in vocab})
    heard = transcribe(model, processor, [speaker.speak(answer) for answer in answers])
    reference = transcribe(model, processor, speak_all(answers, [TALKER_VOICE] * len(answers)))
    return {
        "answers": len(answers),
        "recognised": _mean(normalize_text(h) == normalize_text(a) for h, a in zip(heard, answers, strict=True)),
        "espeak_recognised": _mean(
            normalize_text(h) == normalize_text(a) for h, a in zip(reference, answers, strict=True)
        ),
        "misheard": {a: h for h, a in zip(heard, answers, strict=True) if normalize_text(h) != normalize_text(a)},
    }


def content_word_accuracy(references: list[str], transcripts: list[str]) -> float:
    """Share of the references' content words (colours, shape kinds, step counts, and the words that say which
    question it is: left, above, larger, floor, faster, meet) that the transcripts have in the same order: the n-th
    content word heard is compared with the n-th one said, a missing one is wrong."""
    relations = {"left", "above", "larger", "floor", "faster", "meet"}
    content = {*COLOURS, *KINDS, *(str(k) for k in range(1, MAX_STEPS + 1)), *relations}
    said_heard = [
        [[w for w in normalize_text(text).split() if w in content] for text in pair]
        for pair in zip(references, transcripts, strict=True)
    ]
    hits = [len(heard) > i and heard[i] == word for said, heard in said_heard for i, word in enumerate(said)]
    return _mean(hits)


def voice_sets(count: int) -> dict[str, list[str]]:
    """The voices `count` questions are spoken in, per set: the training voices in turn, and one never heard in
    training."""
    return {
        "training_voices": [TRAIN_VOICES[i % len(TRAIN_VOICES)] for i in range(count)],
        "unseen_voice": [HELD_OUT_VOICE] * count,
    }


def word_error_rate(references: list[str], transcripts: list[str]) -> float:
    """Share of the references' words the transcripts get wrong, case and punctuation aside."""
    normalized = [normalize_text(t) for t in references]
    return float(jiwer.wer(normalized, [normalize_text(t) for t in transcripts]))


def _mean(flags) -> float:
    flags = list(flags)
    return round(float(np.mean(flags)), 4) if flags else float("nan")
