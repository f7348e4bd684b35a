"""Recipe 4: speech. TheWorld-tiny learns to hear (audio encoder + language model) and to speak (codec + talker).

The speech is synthesised with espeak-ng when the data is built: ToyWorld questions and answers, spoken by
several voices. Hearing is trained on three kinds of chat, mixed in every run so nothing is forgotten:
typed questions about an image (as in the language recipe), the same questions spoken, and "repeat what you
heard" transcription, which is how the round trip of the spoken answers is measured. Speaking is trained on one
voice: the codec's codebooks are fitted on its mel frames, then the talker learns text -> codes.
"""

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from rich.progress import track

from theworld.modeling.modeling_theworld import TheWorld
from theworld.omni.audio import EspeakVoice, synthesize_speech
from theworld.omni.audio_encoder import audio_token_count
from theworld.omni.codec import MelCodec
from theworld.omni.processing import TheWorldProcessor
from theworld.omni.talker import Speaker, Talker, TalkerConfig
from theworld.training.loop import optimize

__all__ = [
    "HELD_OUT_VOICE",
    "TALKER_VOICE",
    "TRAIN_VOICES",
    "TRANSCRIBE_PROMPT",
    "ChatTensors",
    "encode_chats",
    "mel_features",
    "normalize_text",
    "speak_all",
    "train_hearing",
    "train_speaker",
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


def normalize_text(text: str) -> str:
    return " ".join(text.lower().replace("?", " ").replace(".", " ").replace(",", " ").split())


def speak_all(texts: list[str], voices: list[EspeakVoice], description: str = "speaking") -> list[np.ndarray]:
    """espeak-ng speech of each text in its voice, 16 kHz."""
    return [
        synthesize_speech(text, voice)
        for text, voice in track(list(zip(texts, voices, strict=True)), description=description, transient=True)
    ]


def mel_features(processor: TheWorldProcessor, recordings: list[np.ndarray]) -> list[torch.Tensor]:
    """Each recording's log-mel frames (T, mel), unpadded."""
    features = []
    for audio in recordings:
        out = processor.feature_extractor([audio], return_tensors="pt")
        features.append(out["input_features"][0, : int(out["input_features_mask"][0].sum())].clone())
    return features


@dataclass
class ChatTensors:
    """Right-padded single-turn chats: an optional image, an optional recording, an optional text; the
    labels cover the answer. `audio_index` points into a table of mel features (-1: no audio)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    labels: torch.Tensor
    audio_index: torch.Tensor
    pixel_values: torch.Tensor | None = None
    world_latents: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, index: torch.Tensor, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        length = int(self.attention_mask[index].sum(1).max())
        batch = {
            "input_ids": self.input_ids[index, :length],
            "attention_mask": self.attention_mask[index, :length],
            "token_type_ids": self.token_type_ids[index, :length],
            "labels": self.labels[index, :length],
        }
        if self.pixel_values is not None:
            batch["pixel_values"] = self.pixel_values[index]
            batch["world_latents"] = self.world_latents[index].float()
        audio = [features[i] for i in self.audio_index[index].tolist() if i >= 0]
        if audio:
            batch["input_features"] = torch.nn.utils.rnn.pad_sequence(audio, batch_first=True)
            mask = torch.zeros(batch["input_features"].shape[:2], dtype=torch.bool)
            for row, clip in enumerate(audio):
                mask[row, : len(clip)] = True
            batch["input_features_mask"] = mask
        return batch


def encode_chats(
    processor: TheWorldProcessor,
    images: list[np.ndarray | None],
    audio_frames: list[int | None],
    texts: list[str | None],
    answers: list[str],
) -> dict[str, torch.Tensor]:
    """Tokenise single-turn chats (image, then recording, then text, each optional) with their answers."""
    tokenizer = processor.tokenizer
    rows, prompt_lengths = [], []
    for image, frames, text, answer in zip(images, audio_frames, texts, answers, strict=True):
        content = []
        if image is not None:
            content.append({"type": "image"})
        if frames is not None:
            content.append({"type": "audio"})
        if text is not None:
            content.append({"type": "text", "text": text})
        messages = [{"role": "user", "content": content}]
        prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full = processor.apply_chat_template(
            [*messages, {"role": "assistant", "content": [{"type": "text", "text": answer}]}], tokenize=False
        )
        expand = {processor.boi_token: processor.full_image_sequence}
        if frames is not None:
            count = audio_token_count(frames, processor.audio_reduction_factor)
            expand[processor.boa_token] = (
                f"{processor.boa_token}{processor.audio_soft_token * count}{processor.eoa_token}"
            )
        for token, sequence in expand.items():
            prompt, full = prompt.replace(token, sequence), full.replace(token, sequence)
        rows.append(tokenizer(full, add_special_tokens=False).input_ids)
        prompt_lengths.append(len(tokenizer(prompt, add_special_tokens=False).input_ids))
    length = max(map(len, rows))
    input_ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    for i, prompt_length in enumerate(prompt_lengths):
        labels[i, :prompt_length] = -100
    token_type_ids = (input_ids == tokenizer.convert_tokens_to_ids("<image_soft_token>")).long()
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "labels": labels,
    }


def pixel_values_of(processor: TheWorldProcessor, images: list[np.ndarray]) -> torch.Tensor:
    return processor.image_processor(images=[Image.fromarray(i) for i in images], return_tensors="pt")["pixel_values"]


def train_hearing(
    model: TheWorld,
    mixtures: dict[str, tuple[ChatTensors, float]],
    features: list[torch.Tensor],
    steps: int,
    num_world_steps: int,
    batch_size: int = 32,
    lr: float = 5e-4,
    world_dropout: float = 0.15,
    seed: int = 0,
) -> float:
    """Train the audio encoder and the language model (not the world encoder and dynamics) on a mixture of
    chat kinds, {name: (tensors, probability)}; each step draws one kind. Returns the last loss."""
    generator = torch.Generator().manual_seed(seed)
    names = list(mixtures)
    weights = torch.tensor([mixtures[name][1] for name in names])
    frozen = [model.world_encoder, model.dynamics]
    for module in frozen:
        module.requires_grad_(False)

    def step_loss() -> tuple[torch.Tensor, float]:
        data = mixtures[names[int(torch.multinomial(weights, 1, generator=generator))]][0]
        index = torch.randint(len(data), (batch_size,), generator=generator)
        batch = data.batch(index, features)
        skip = bool(torch.rand((), generator=generator) < world_dropout)
        steps_here = num_world_steps if "pixel_values" in batch else None
        loss = model(**batch, num_world_steps=steps_here, skip_world_tokens=skip).loss
        return loss, loss.item()

    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    loss_value = optimize(trainable, steps, lr, step_loss, "hearing", weight_decay=0.01, warmup_fraction=0.05)
    for module in frozen:
        module.requires_grad_(True)
    model.eval()
    return loss_value


def train_speaker(
    tokenizer,
    texts: list[str],
    recordings: list[np.ndarray],
    steps: int,
    batch_size: int = 16,
    lr: float = 2e-3,
    talker_size: dict | None = None,
    seed: int = 0,
) -> tuple[Speaker, dict]:
    """Fit the codec on `recordings`, then train a talker from scratch on (text, codes) pairs."""
    torch.manual_seed(seed)
    codec = MelCodec()
    codec_mse = codec.fit(recordings, seed=seed)
    size = talker_size or {"hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 4}
    config = TalkerConfig(
        text_vocab_size=len(tokenizer),
        num_quantizers=codec.num_quantizers,
        codebook_size=codec.codebook_size,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        **size,
    )
    talker = Talker(config)
    speaker = Speaker(talker, tokenizer, codec)
    sequences, prompt_lengths = [], []
    for text, audio in zip(texts, recordings, strict=True):
        text_ids = speaker.text_ids(text)
        sequences.append(talker.speech_sequence(text_ids, codec.encode(audio)))
        prompt_lengths.append(len(text_ids) + 1)
    length = max(map(len, sequences))
    input_ids = torch.full((len(sequences), length), config.speech_end_id, dtype=torch.long)
    labels = torch.full((len(sequences), length), -100, dtype=torch.long)
    for i, (sequence, prompt_length) in enumerate(zip(sequences, prompt_lengths, strict=True)):
        input_ids[i, : len(sequence)] = torch.tensor(sequence)
        labels[i, prompt_length : len(sequence)] = torch.tensor(sequence[prompt_length:])
    lengths = torch.tensor([len(s) for s in sequences])
    generator = torch.Generator().manual_seed(seed)

    def step_loss() -> tuple[torch.Tensor, float]:
        index = torch.randint(len(sequences), (batch_size,), generator=generator)
        longest = int(lengths[index].max())
        ids, target = input_ids[index, :longest], labels[index, :longest]
        loss = talker(
            input_ids=ids, attention_mask=(target != -100) | (ids != config.speech_end_id), labels=target
        ).loss
        return loss, loss.item()

    talker.train()
    loss = optimize(list(talker.parameters()), steps, lr, step_loss, "talker", weight_decay=0.01, warmup_fraction=0.05)
    talker.eval()
    return speaker, {"codec_quantisation_mse": round(codec_mse, 4), "talker_train_loss": loss}


@torch.no_grad()
def answer_chats(
    model: TheWorld, processor: TheWorldProcessor, chats: list[list[dict]], batch_size: int = 32, **generate_kwargs
) -> list[str]:
    """Greedy answers to single-turn chats (Gemma 3 message lists), batched with left padding."""
    answers: list[str] = []
    for start in range(0, len(chats), batch_size):
        inputs = processor.apply_chat_template(
            chats[start : start + batch_size],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True},
        ).to(model.device)
        output = model.generate(**inputs, do_sample=False, max_new_tokens=24, **generate_kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        answers += [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers


def user_turn(*items: dict) -> list[dict]:
    return [{"role": "user", "content": list(items)}]


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
    from theworld.toyworld import make_examples

    examples = make_examples("test", num_clips, questions_per_clip=questions_per_clip)
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
    voices = {
        "training_voices": [TRAIN_VOICES[i % len(TRAIN_VOICES)] for i in range(len(examples))],
        "unseen_voice": [HELD_OUT_VOICE] * len(examples),
    }
    for name, voice_list in voices.items():
        recordings = speak_all([e.question for e in examples], voice_list, f"speaking ({name})")
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
        report[name] = {
            "agreement_with_typed": _mean(s == t for s, t in zip(spoken, typed, strict=True)),
            "spoken_accuracy": _mean(s == e.answer for s, e in zip(spoken, examples, strict=True)),
            "question_transcription_exact": _mean(
                normalize_text(h) == normalize_text(e.question) for h, e in zip(heard, examples, strict=True)
            ),
        }
    if speaker is not None:
        report["round_trip"] = round_trip(model, processor, speaker)
    return report


def round_trip(model: TheWorld, processor: TheWorldProcessor, speaker: Speaker) -> dict:
    """Every answer the model gives, spoken by the talker and heard back by the speech-in path; espeak-ng's
    own recordings of the answers are the reference."""
    from theworld.toyworld import ANSWER_VOCAB

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


def _mean(flags) -> float:
    flags = list(flags)
    return round(float(np.mean(flags)), 4) if flags else float("nan")
