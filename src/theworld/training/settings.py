"""The recipe's settings: how much data and how many steps each stage of `theworld train` takes, by name.

`full` builds the shipped TheWorld-tiny; `smoke` runs every stage end to end on a few steps (the tests).
"""

from dataclasses import dataclass, field

__all__ = ["SETTINGS", "RecipeSettings"]


@dataclass(frozen=True)
class RecipeSettings:
    preset: str = "theworld-tiny"
    # The baselines the world is measured against, on the same recipe, budget and seed: `world=False` builds no
    # world parts (the language model sees the image's tokens only, and the world stages are skipped);
    # `world_steps=0` gives world tokens of the current frame only (no imagination, so no dynamics stage). None
    # keeps the preset's number of world steps.
    world: bool = True
    world_steps: int | None = None
    vae_clips: int = 400
    vae_steps: int = 1000
    vae_batch_size: int = 16
    # How many times more the VAE's loss counts the faded motion trails' pixels than the shapes' (1: the same); one
    # frame shows a shape's velocity only through them.
    vae_trail_weight: float = 10.0
    # Where the VAE's training starts: "diffusers" is the VAE's own initialisation, from which it learns sharper
    # frames that keep more of the trails (docs/results.md, "Speed in the latents"); "gemma" is the language model's,
    # which `TheWorld(config)` applies to every module.
    vae_init: str = "diffusers"
    dynamics_clips: int = 800
    dynamics_steps: int = 1000
    dynamics_batch_size: int = 32
    objects_clips: int = 800
    objects_steps: int = 3000
    objects_batch_size: int = 64
    facts_clips: int = 2000
    facts_steps: int = 3000
    facts_batch_size: int = 256
    # The language stage trains a fresh language model in one pass on questions about `language_clips` clips. With
    # `asked_facts` it first gives the object reader pair facts picked by the question's words (`object_reader.py`),
    # trained with the language model. A model without the world (`world=False`) has no reader to ask.
    asked_facts: bool = True
    language_clips: int = 6000
    questions_per_clip: int = 6
    language_steps: int = 4000
    # Each update takes `language_batch_size` examples from each of `language_shards` shards: two shards are two
    # processes' halves of the batch on two cores (`run_stage(..., jobs=2)`), or one process's, with the same result.
    language_shards: int = 2
    language_batch_size: int = 16
    language_lr: float = 3e-3
    # How often each question kind is drawn, relative to its share of the examples. The kinds that ask for one of
    # the object reader's facts by a word elsewhere in the question (left of / above / meet: a pair's; where will
    # it be / hits floor: an object's, at the step the question names) need the language model to combine two
    # places of the prompt and are learnt last, so they are drawn more; one pass is sensitive to these weights.
    # The hearing stage draws its typed and spoken questions by them too.
    language_kind_weights: dict[str, float] = field(
        default_factory=lambda: {
            "colour": 0.75,
            "count": 0.5,
            "larger": 1.0,
            "faster": 1.0,
            "left_of": 1.5,
            "above": 1.5,
            "meet": 3.0,
            "future_quadrant": 2.5,
            "hits_floor": 1.0,
        }
    )
    speech_clips: int = 1000
    # A new audio encoder even where the checkpoint has one: the hearing stage then trains it from scratch
    # (`ears_steps` of CTC, then the joint stage) instead of continuing the old ear and what it mishears.
    fresh_ears: bool = False
    # Enough CTC steps that the ear hears a voice it never trained on with each seed tried: with half as many, how
    # well it did depended on the seed (docs/results.md, choosing the hearing stage).
    ears_steps: int = 2400
    ears_batch_size: int = 32
    speech_steps: int = 750  # of which about a sixth are CTC steps of the ear alone (the mixture's "ears")
    # Every update averages `speech_streams` draws of `speech_batch_size` chats (or a CTC step), one per process
    # with `jobs=2`, as `language_shards` are.
    speech_streams: int = 2
    speech_batch_size: int = 8
    # > 0: spoken chats also distilled from their typed twins (`speech.TypedTwins`), with this weight.
    typed_twin_weight: float = 0.0
    # Random strings of the questions' words, spoken for the ear's CTC steps only (`speech.word_strings`), so the
    # ear hears each word instead of recognising whole sentences; and CTC compression of the audio tokens (one per
    # heard word; `ctc_compression` in the audio config).
    ear_word_strings: int = 400
    ctc_compression: bool = True
    # The fillers CTC compression leaves are masked out of attention and positions (`hide_ctc_fillers`).
    hide_ctc_fillers: bool = True
    # Whether an audio token adds a linear projection of the acoustics to the expected word embedding
    # (`acoustic_projection` in the audio config); without it a confidently heard word reads as its typed twin.
    acoustic_projection: bool = False
    # The training voices' answers once more through the talker's vocoder (Griffin-Lim), for the ear's CTC steps,
    # so that the ear also hears the answers as the talker speaks them (the round trip).
    ear_vocoded_answers: bool = True
    talker_steps: int = 300
    talker_batch_size: int = 15
    speech_eval_clips: int = 30
    vocab_size: int = 600
    seed: int = 0


SETTINGS = {
    "full": RecipeSettings(),
    # A few steps on a handful of clips: what the tests run to prove every stage works end to end.
    "smoke": RecipeSettings(
        vae_clips=4,
        vae_steps=2,
        vae_batch_size=4,
        dynamics_clips=4,
        dynamics_steps=2,
        dynamics_batch_size=4,
        objects_clips=4,
        objects_steps=2,
        objects_batch_size=8,
        facts_clips=2,
        facts_steps=2,
        facts_batch_size=8,
        language_clips=6,
        questions_per_clip=2,
        language_steps=2,
        language_batch_size=2,
        speech_clips=3,
        ears_steps=2,
        ears_batch_size=4,
        speech_steps=2,
        speech_batch_size=2,
        typed_twin_weight=1.0,  # so the tests also run the distillation the full recipe leaves off
        ear_word_strings=3,
        talker_steps=2,
        talker_batch_size=2,
        speech_eval_clips=0,
        vocab_size=400,
    ),
}
