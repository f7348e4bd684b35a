"""The speech stages of TheWorld's checkpoint: hearing (an ear that transcribes, then a language model that
answers spoken questions) and speaking (a codec and a talker for the answers).

With `context.speech_folder` (where `train all`'s second process prepared them) the speech data, the ear's
transcription training and the voice are read from there instead of being made here.
"""

import json

import numpy as np
import torch
from safetensors.torch import load_file

from theworld.evaluation import speech as speech_evaluation
from theworld.evaluation.speech_data import TALKER_VOICE, TRANSCRIBE_PROMPT, speak_all
from theworld.modeling.modeling_theworld import TheWorld
from theworld.modeling.processing_theworld import add_hearing_to_processor
from theworld.omni.audio_encoder import TINY_AUDIO_ENCODER
from theworld.omni.talker import Speaker
from theworld.toyworld import ANSWER_VOCAB
from theworld.training import speech
from theworld.training.checkpoint_stage import in_two_processes, measured
from theworld.training.hearing_data import SpeechData, hearing_examples, make_speech_data
from theworld.training.language import ChatTensors, encode_chats, encode_images
from theworld.training.language_stage import kind_weights
from theworld.training.parallel import is_main_process
from theworld.training.settings import RecipeSettings
from theworld.training.stage import StageContext

__all__ = ["add_ears", "hearing", "speaking", "train_ear", "train_voice"]


def add_ears(model: TheWorld, processor, settings: RecipeSettings):
    """A fresh audio encoder if the model has none or `settings.fresh_ears` (and the processor's audio tokens if
    it has none); the settings decide compression, hidden fillers and the acoustic projection for an ear that is
    already there too (the hearing stage retrains with them)."""
    if model.config.audio_config is None:
        processor = add_hearing_to_processor(processor, TINY_AUDIO_ENCODER["conf_reduction_factor"])
    if model.config.audio_config is None or settings.fresh_ears:
        model.add_audio_encoder(TINY_AUDIO_ENCODER, processor.audio_token_id)
    model.config.audio_config["ctc_compression"] = model.audio_encoder.ctc_compression = settings.ctc_compression
    hide = settings.ctc_compression and settings.hide_ctc_fillers
    model.config.audio_config["hide_ctc_fillers"] = model.audio_encoder.hide_fillers = hide
    model.config.audio_config["acoustic_projection"] = settings.acoustic_projection
    if not settings.acoustic_projection:
        model.audio_encoder.projector = None
    elif model.audio_encoder.projector is None:
        model.audio_encoder.add_projector()
    return processor


def train_ear(model: TheWorld, data: SpeechData, transcripts: list, settings: RecipeSettings) -> float:
    """The ear alone learns to transcribe `data` (CTC): the hearing stage's first part."""
    return speech.train_ears(
        model,
        data.ear_features,
        transcripts,
        settings.ears_steps,
        batch_size=settings.ears_batch_size,
        seed=settings.seed,
    )


def hearing(context: StageContext) -> dict:
    """Ears: the audio encoder learns to transcribe (CTC), then it and the language model learn to answer spoken
    questions, on espeak-ng speech of the training questions."""
    model, settings, folder = context.model, context.settings, context.speech_folder
    with in_two_processes(context, settings.speech_streams, hearing):
        processor = context.processor = add_ears(model, context.processor, settings)
        examples = hearing_examples(settings)
        data = (
            make_speech_data(processor, examples, settings)
            if folder is None
            else SpeechData.load(folder / "speech_data.safetensors")
        )
        transcripts = speech.transcript_ids(processor.tokenizer, data.ear_texts)
        if folder is None:
            ears_loss = train_ear(model, data, transcripts, settings)
        else:
            model.audio_encoder.load_state_dict(load_file(folder / "ears.safetensors"))
            ears_loss = json.loads((folder / "ears_metrics.json").read_text())["ears_ctc_loss"]
        torch.manual_seed(settings.seed)  # the same from here on whether the ear was trained here or apart
        loss = _train_hearing(model, processor, examples, data, transcripts, settings)
    metrics = {"ears_ctc_loss": ears_loss, "hearing_train_loss": loss, "speech_recordings": len(data.texts)}
    if settings.speech_eval_clips and is_main_process():
        metrics["speech_eval"] = measured(
            speech_evaluation.evaluate_speech, model, processor, None, settings.speech_eval_clips
        )
    return metrics


def _train_hearing(
    model: TheWorld, processor, examples: list, data: SpeechData, transcripts: list, settings: RecipeSettings
) -> float:
    """The ear and the language model on a mixture of typed, spoken and "repeat what you heard" chats, and CTC
    steps of the ear alone."""
    texts, features = data.texts, data.features
    rng = np.random.default_rng(settings.seed)
    answer_set = {e.answer for e in examples}
    # Typed and spoken questions are drawn by kind as the language stage draws them: uniform draws here undid
    # part of what that stage's weights taught (left of / above are learnt last and forgotten first).
    weights = kind_weights(examples, settings)
    spoken_answers = [i for i, text in enumerate(texts) if text in answer_set]
    recordings_of: dict[str, list[int]] = {}
    for index, text in enumerate(texts):
        recordings_of.setdefault(text, []).append(index)

    chosen = [int(rng.choice(recordings_of[e.question])) for e in examples]
    frames = [len(features[i]) for i in chosen]
    images = [e.image for e in examples]
    answers = [e.answer for e in examples]
    world = encode_images(model, processor, images)
    none = [None] * len(examples)
    typed = ChatTensors(
        **encode_chats(processor, images, none, [e.question for e in examples], answers),
        audio_index=torch.full((len(examples),), -1),
        **world,
    )
    spoken = ChatTensors(
        **encode_chats(processor, images, frames, none, answers), audio_index=torch.tensor(chosen), **world
    )

    def repeat(indices: list[int]) -> ChatTensors:
        """ "Repeat what you heard" chats on the recordings `indices`."""
        encoded = encode_chats(
            processor,
            [None] * len(indices),
            [len(features[i]) for i in indices],
            [TRANSCRIBE_PROMPT] * len(indices),
            [texts[i] for i in indices],
        )
        return ChatTensors(**encoded, audio_index=torch.tensor(indices))

    # The spoken answers are short and few: a kind of their own, or the long questions drown them out.
    repeat_answers = repeat(spoken_answers)
    repeat_questions = repeat([i for i, text in enumerate(texts) if text not in answer_set])
    return speech.train_hearing(
        model,
        {
            "typed": (typed, 0.2, weights),
            "spoken": (speech.TypedTwins(spoken, typed, features, settings.typed_twin_weight), 0.3, weights)
            if settings.typed_twin_weight
            else (spoken, 0.3, weights),
            "repeat questions": (repeat_questions, 0.2),
            "repeat answers": (repeat_answers, 0.13),
            "ears": (speech.EarBatches(model, data.ear_features, transcripts, settings.ears_batch_size), 0.17),
        },
        features,
        settings.speech_steps,
        model.config.num_world_steps,
        batch_size=settings.speech_batch_size,
        seed=settings.seed,
        num_streams=settings.speech_streams,
    )


def speaking(context: StageContext) -> dict:
    """A voice: the codec fitted on espeak-ng speech of every answer, and the talker trained on it."""
    settings, folder = context.settings, context.speech_folder
    if folder is None:
        context.speaker, metrics = train_voice(context.processor.tokenizer, settings)
    else:
        context.speaker = Speaker.from_pretrained(folder)
        metrics = json.loads((folder / "voice_metrics.json").read_text())
    if settings.speech_eval_clips and context.model.config.audio_config is not None:
        metrics["round_trip"] = measured(
            speech_evaluation.round_trip, context.model, context.processor, context.speaker
        )
    return metrics


def train_voice(tokenizer, settings: RecipeSettings) -> tuple[Speaker, dict]:
    """The codec and the talker, on espeak-ng speech of every answer in the talker's voice."""
    answers = sorted({a for vocab in ANSWER_VOCAB.values() for a in vocab})
    recordings = speak_all(answers, [TALKER_VOICE] * len(answers), "speaking the answers")
    return speech.train_speaker(
        tokenizer, answers, recordings, settings.talker_steps, batch_size=settings.talker_batch_size, seed=settings.seed
    )
