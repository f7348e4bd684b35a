"""Speech: TheWorld-tiny learns to hear (audio encoder + language model) and to speak (codec + talker).

The speech is synthesised with espeak-ng when the data is built: ToyWorld questions and answers, spoken by
several voices. Hearing is trained on three kinds of chat, mixed in every run so nothing is forgotten:
typed questions about an image (as in the language recipe), the same questions spoken, and "repeat what you
heard" transcription, which is how the round trip of the spoken answers is measured. Speaking is trained on one
voice: the codec's codebooks are fitted on its mel frames, then the talker learns text -> codes.
"""

import numpy as np
import torch
from rich.console import Console
from rich.progress import track

from theworld.evaluation.speech_data import TRAIN_VOICES, normalize_text, pad_features, speak_all
from theworld.modeling.modeling_theworld import TheWorld
from theworld.omni.codec import MelCodec
from theworld.omni.talker import Speaker, Talker, TalkerConfig
from theworld.training.language import ChatTensors, train_with_world_frozen
from theworld.training.loop import optimize
from theworld.training.parallel import held_shards, shard_generator

__all__ = [
    "EarBatches",
    "TypedTwins",
    "in_training_voices",
    "train_ears",
    "train_hearing",
    "train_speaker",
    "transcript_ids",
    "vocoded",
    "word_strings",
]

progress_console = Console(stderr=True)


def in_training_voices(sentences: list[str], description: str) -> tuple[list[str], list[np.ndarray]]:
    """Every sentence spoken in every training voice (sentence-major): the texts and their recordings."""
    texts = [text for text in sentences for _ in TRAIN_VOICES]
    voices = [voice for _ in sentences for voice in TRAIN_VOICES]
    return texts, speak_all(texts, voices, description)


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
        vocoder.mel_to_audio(vocoder.mel(audio))
        for audio in track(recordings, description="vocoding", console=progress_console, transient=True)
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

    return train_with_world_frozen(model, step_loss, steps, lr, "hearing", shards=num_streams)


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
