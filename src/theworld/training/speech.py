"""Recipe 4: speech. TheWorld-tiny learns to hear (audio encoder + language model) and to speak (codec + talker).

The speech is synthesised with espeak-ng when the data is built: ToyWorld questions and answers, spoken by
several voices. Hearing is trained on three kinds of chat, mixed in every run so nothing is forgotten:
typed questions about an image (as in the language recipe), the same questions spoken, and "repeat what you
heard" transcription, which is how the round trip of the spoken answers is measured. Speaking is trained on one
voice: the codec's codebooks are fitted on its mel frames, then the talker learns text -> codes.
"""

import numpy as np
import torch
from PIL import Image
from rich.progress import track

from theworld.modeling.modeling_theworld import TheWorld
from theworld.omni.audio import EspeakVoice, synthesize_speech
from theworld.omni.codec import MelCodec
from theworld.omni.processing import TheWorldProcessor
from theworld.omni.talker import Speaker, Talker, TalkerConfig
from theworld.training.evaluate import answer_chats
from theworld.training.language import ChatTensors, pad_features, train_around_the_world
from theworld.training.loop import optimize
from theworld.training.parallel import held_shards, shard_generator

__all__ = [
    "EarBatches",
    "HELD_OUT_VOICE",
    "TALKER_VOICE",
    "TRAIN_VOICES",
    "TRANSCRIBE_PROMPT",
    "TypedTwins",
    "mel_features",
    "content_word_accuracy",
    "ctc_transcribe",
    "in_training_voices",
    "normalize_text",
    "speak_all",
    "train_ears",
    "train_hearing",
    "transcript_ids",
    "vocoded",
    "word_strings",
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


def in_training_voices(sentences: list[str], description: str) -> tuple[list[str], list[np.ndarray]]:
    """Every sentence spoken in every training voice (sentence-major): the texts and their recordings."""
    texts = [text for text in sentences for _ in TRAIN_VOICES]
    voices = [voice for _ in sentences for voice in TRAIN_VOICES]
    return texts, speak_all(texts, voices, description)


def mel_features(processor: TheWorldProcessor, recordings: list[np.ndarray]) -> list[torch.Tensor]:
    """Each recording's log-mel frames (T, mel), unpadded."""
    features = []
    for audio in recordings:
        out = processor.feature_extractor([audio], return_tensors="pt")
        features.append(out["input_features"][0, : int(out["input_features_mask"][0].sum())].clone())
    return features


def word_strings(sentences: list[str], count: int, rng: np.random.Generator) -> list[str]:
    """`count` random strings of 3-8 words drawn from the words of `sentences`. An ear trained on a few hundred
    sentences learns to recognise the sentences and guesses the words that vary between them (the colour in
    "where will the red shape be"); strings with no sentence to recognise make it hear each word."""
    words = sorted({word for sentence in sentences for word in normalize_text(sentence).split()})
    if not words:
        raise ValueError("word_strings needs sentences with words in them")
    return [" ".join(rng.choice(words, size=int(rng.integers(3, 9)))) for _ in range(count)]


def vocoded(recordings: list[np.ndarray]) -> list[np.ndarray]:
    """Each recording through the talker's vocoder: its log-mel frames back to samples by Griffin-Lim, which
    smears the phase the way the talker's speech is smeared."""
    vocoder = MelCodec()  # unfitted: plain log-mel analysis and Griffin-Lim synthesis, no quantisation
    return [
        vocoder.mel_to_audio(vocoder.mel(audio)) for audio in track(recordings, description="vocoding", transient=True)
    ]


def transcript_ids(tokenizer, texts: list[str]) -> list[torch.Tensor]:
    """What the transcriber must hear in each recording: the text's tokens, as the language model reads them."""
    return [torch.tensor(tokenizer(text, add_special_tokens=False).input_ids) for text in texts]


def _mask_spectrogram(features: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """SpecAugment (two frequency bands and two time spans set to the clip's mean), so six training voices
    teach an ear that also hears a seventh. Hand-written: a few lines, and nothing in our stack has it for
    Gemma 3n's features."""
    features = features.clone()
    batch, frames, bins = features.shape
    for row in range(batch):
        fill = features[row, mask[row]].mean()
        length = int(mask[row].sum())
        for _ in range(2):
            width = int(torch.randint(0, 13, (), generator=generator))
            start = int(torch.randint(0, bins - width + 1, (), generator=generator))
            features[row, :, start : start + width] = fill
            span = int(torch.randint(0, min(8, max(length // 10, 1)) + 1, (), generator=generator))
            start = int(torch.randint(0, max(length - span, 0) + 1, (), generator=generator))
            features[row, start : start + span] = fill
    return features


class EarBatches:
    """CTC batches for the audio encoder alone: recordings that are neighbours in length (they run from 0.4 to
    6 s, and padding would double the conformer's work), SpecAugmented, against their token transcripts."""

    def __init__(self, model: TheWorld, features: list[torch.Tensor], transcripts: list[torch.Tensor], batch_size: int):
        self.encoder, self.blank = model.audio_encoder, model.config.text_config.pad_token_id
        self.features, self.transcripts = features, transcripts
        self.by_length = torch.tensor([len(f) for f in features]).argsort()
        self.batch_size = min(batch_size, len(features))

    def loss(self, generator: torch.Generator) -> torch.Tensor:
        start = int(torch.randint(len(self.features) - self.batch_size + 1, (), generator=generator))
        index = self.by_length[start : start + self.batch_size].tolist()
        clips, mask = pad_features([self.features[i] for i in index])
        states, valid = self.encoder.encode(_mask_spectrogram(clips, mask, generator), mask)
        log_probs = self.encoder.transcriber(states).log_softmax(-1).transpose(0, 1)
        targets = [self.transcripts[i] for i in index]
        return torch.nn.functional.ctc_loss(
            log_probs,
            torch.cat(targets),
            valid.sum(1),
            torch.tensor([len(t) for t in targets]),
            blank=self.blank,
            zero_infinity=True,
        )


class TypedTwins:
    """Spoken questions taught by their typed twins, the way DiVA distils a text model into its own speech input:
    besides the answer, the spoken chat learns the distribution the typed chat (no gradient) gives at every
    answer token, so a spoken question gets what its typed twin gets, right or wrong. Row i of `spoken` and
    `typed` must be the same question about the same image with the same answer."""

    def __init__(self, spoken: ChatTensors, typed: ChatTensors, features: list[torch.Tensor], weight: float = 1.0):
        if len(spoken) != len(typed):
            raise ValueError(f"{len(spoken)} spoken chats but {len(typed)} typed twins; they must pair up row by row")
        self.spoken, self.typed, self.features, self.weight = spoken, typed, features, weight

    def __len__(self) -> int:
        return len(self.spoken)

    def loss(self, model: TheWorld, index: torch.Tensor, num_world_steps: int, skip_world: bool) -> torch.Tensor:
        spoken, typed = self.spoken.batch(index, self.features), self.typed.batch(index)
        with torch.no_grad():
            teacher = model(**typed, num_world_steps=num_world_steps, skip_world_tokens=skip_world).logits
        student = model(**spoken, num_world_steps=num_world_steps, skip_world_tokens=skip_world)
        # Logits at position p predict the label at p + 1; both chats end in the same answer tokens.
        teacher = teacher[:, :-1][typed["labels"][:, 1:] != -100]
        answer = student.logits[:, :-1][spoken["labels"][:, 1:] != -100]
        distance = torch.nn.functional.kl_div(
            answer.log_softmax(-1), teacher.log_softmax(-1), log_target=True, reduction="batchmean"
        )
        return student.loss + self.weight * distance


def train_ears(
    model: TheWorld,
    features: list[torch.Tensor],
    transcripts: list[torch.Tensor],
    steps: int,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
) -> float:
    """Train the audio encoder alone to transcribe (CTC onto the language model's tokens, blank = <pad>), so
    the hearing stage starts from an ear that knows the words. Returns the last loss."""
    generator = torch.Generator().manual_seed(seed)
    ears = EarBatches(model, features, transcripts, batch_size)

    def step_loss() -> tuple[torch.Tensor, float]:
        loss = ears.loss(generator)
        return loss, loss.item()

    model.audio_encoder.train()
    parameters = list(model.audio_encoder.parameters())
    loss = optimize(parameters, steps, lr, step_loss, "ears", weight_decay=0.01, warmup_fraction=0.05)
    model.audio_encoder.eval()
    return loss


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


def train_hearing(
    model: TheWorld,
    mixtures: dict[str, tuple[ChatTensors | EarBatches, float] | tuple[ChatTensors | TypedTwins, float, torch.Tensor]],
    features: list[torch.Tensor],
    steps: int,
    num_world_steps: int,
    batch_size: int = 16,
    lr: float = 5e-4,
    world_dropout: float = 0.15,
    seed: int = 0,
    num_streams: int = 1,
) -> float:
    """Train the audio encoder and the language model (not the world encoder and dynamics) on a mixture of
    chat kinds, {name: (tensors, probability)} or {name: (tensors, probability, one weight per chat)}. Every
    update averages `num_streams` independently seeded draws, each of one kind: a batch of `batch_size` chats
    (uniformly, or in proportion to the weights), or an `EarBatches` CTC step of the ear alone (it keeps the
    transcriber transcribing while the language model's gradient also moves it); a `TypedTwins` kind is spoken
    chats distilled from their typed twins. The streams are shards of `loop.optimize`: in a process group
    (`training.parallel`) each process draws its own. Returns the last loss."""
    generators = {stream: shard_generator(seed, stream) for stream in held_shards(num_streams)}
    names = list(mixtures)
    weights = torch.tensor([mixtures[name][1] for name in names])

    def step_loss(stream: int) -> tuple[torch.Tensor, float]:
        generator = generators[stream]
        data, _, *draw_weights = mixtures[names[int(torch.multinomial(weights, 1, generator=generator))]]
        if isinstance(data, EarBatches):
            loss = data.loss(generator)
            return loss, loss.item()
        if draw_weights:
            index = torch.multinomial(draw_weights[0], batch_size, replacement=True, generator=generator)
        else:
            index = torch.randint(len(data), (batch_size,), generator=generator)
        skip = bool(torch.rand((), generator=generator) < world_dropout)
        if isinstance(data, TypedTwins):
            loss = data.loss(model, index, num_world_steps, skip)
            return loss, loss.item()
        batch = data.batch(index, features)
        steps_here = num_world_steps if "pixel_values" in batch else None
        loss = model(**batch, num_world_steps=steps_here, skip_world_tokens=skip).loss
        return loss, loss.item()

    return train_around_the_world(model, step_loss, steps, lr, "hearing", shards=num_streams)


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
    voices = {
        "training_voices": [TRAIN_VOICES[i % len(TRAIN_VOICES)] for i in range(len(examples))],
        "unseen_voice": [HELD_OUT_VOICE] * len(examples),
    }
    for name, voice_list in voices.items():
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
            "question_word_error_rate": _word_error_rate(examples, heard),
            "ear_alone_word_error_rate": _word_error_rate(examples, ear),
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


def content_word_accuracy(references: list[str], transcripts: list[str]) -> float:
    """Share of the references' content words (colours, shape kinds, step counts, and the words that say which
    question it is: left, above, larger, floor, faster, meet) that the transcripts have in the same order: the n-th
    content word heard is compared with the n-th one said, a missing one is wrong."""
    from theworld.toyworld import COLOURS, KINDS
    from theworld.toyworld.language import MAX_STEPS

    relations = {"left", "above", "larger", "floor", "faster", "meet"}
    content = {*COLOURS, *KINDS, *(str(k) for k in range(1, MAX_STEPS + 1)), *relations}
    said_heard = [
        [[w for w in normalize_text(text).split() if w in content] for text in pair]
        for pair in zip(references, transcripts, strict=True)
    ]
    hits = [len(heard) > i and heard[i] == word for said, heard in said_heard for i, word in enumerate(said)]
    return _mean(hits)


def _word_error_rate(examples, transcripts: list[str]) -> float:
    import jiwer

    references = [normalize_text(e.question) for e in examples]
    return round(float(jiwer.wer(references, [normalize_text(t) for t in transcripts])), 4)


def _mean(flags) -> float:
    flags = list(flags)
    return round(float(np.mean(flags)), 4) if flags else float("nan")
