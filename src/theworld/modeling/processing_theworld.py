"""`TheWorldProcessor`: Gemma 3's processor plus speech. A `<start_of_audio>` in the text becomes
`<start_of_audio>` + one `<audio_soft_token>` per audio token + `<end_of_audio>`, and the audio becomes Gemma 3n's
log-mel features (transformers' `Gemma3nAudioFeatureExtractor`). Unlike Gemma 3n's fixed 188 tokens, the count
follows the clip's length, so a two-second question costs a tiny model 25 tokens, not 188."""

import numpy as np
from transformers import AutoProcessor, Gemma3nAudioFeatureExtractor, Gemma3Processor

from theworld.modeling.configuration_theworld import TheWorldConfig
from theworld.modeling.processing import GEMMA3_CHAT_TEMPLATE
from theworld.omni.audio import MAX_AUDIO_SECONDS, SAMPLING_RATE
from theworld.omni.audio_encoder import audio_token_count

__all__ = [
    "AUDIO_TOKENS",
    "CHAT_TEMPLATE_WITH_AUDIO",
    "MAX_AUDIO_SAMPLES",
    "TheWorldProcessor",
    "add_hearing_to_processor",
]

AUDIO_TOKENS = ["<start_of_audio>", "<end_of_audio>", "<audio_soft_token>"]
MAX_AUDIO_SAMPLES = MAX_AUDIO_SECONDS * SAMPLING_RATE  # Gemma 3n's window

# Gemma 3's template with one more content type: {"type": "audio"} becomes <start_of_audio>, as Gemma 3n's does.
_IMAGE_ITEM = "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n"
CHAT_TEMPLATE_WITH_AUDIO = GEMMA3_CHAT_TEMPLATE.replace(
    _IMAGE_ITEM,
    _IMAGE_ITEM + "            {%- elif item['type'] == 'audio' -%}\n                {{ '<start_of_audio>' }}\n",
)
assert CHAT_TEMPLATE_WITH_AUDIO != GEMMA3_CHAT_TEMPLATE


class TheWorldProcessor(Gemma3Processor):
    def __init__(
        self,
        image_processor,
        feature_extractor,
        tokenizer,
        chat_template=None,
        image_seq_length: int = 256,
        audio_reduction_factor: int = 2,
        **kwargs,
    ):
        self.audio_reduction_factor = audio_reduction_factor
        self.boa_token, self.eoa_token, self.audio_soft_token = AUDIO_TOKENS
        self.audio_token = self.boa_token  # the placeholder in the text, as <start_of_image> is for images
        self.audio_token_id = tokenizer.convert_tokens_to_ids(self.audio_soft_token)
        super().__init__(
            image_processor=image_processor,
            tokenizer=tokenizer,
            chat_template=chat_template,
            image_seq_length=image_seq_length,
            feature_extractor=feature_extractor,
            **kwargs,
        )

    def _process_audio(self, audio, **kwargs):
        # A tokenizer loaded from disk lends its max_length=None to every modality; the features keep their own.
        if kwargs.get("max_length") is None:
            kwargs["max_length"] = MAX_AUDIO_SAMPLES
        # The features would be cut at max_length without a word: longer audio is refused instead.
        for clip in audio:
            if np.shape(clip)[-1] > kwargs["max_length"]:
                seconds, limit = np.shape(clip)[-1] / SAMPLING_RATE, kwargs["max_length"] / SAMPLING_RATE
                raise ValueError(f"audio is {seconds:.1f} s; the model hears at most {limit:g} s; trim it")
        return super()._process_audio(audio, **kwargs)

    def replace_audio_token(self, audio_inputs: dict, audio_idx: int, **kwargs) -> str:
        frames = int(audio_inputs["input_features_mask"][audio_idx].sum())
        count = audio_token_count(frames, self.audio_reduction_factor)
        return f"{self.boa_token}{self.audio_soft_token * count}{self.eoa_token}"

    def prepare_inputs_layout(self, images=None, text=None, videos=None, audio=None, **kwargs):
        images, text, _, _ = super().prepare_inputs_layout(images=images, text=text, **kwargs)
        if audio is not None and not isinstance(audio, list):
            audio = [audio]
        if audio is not None and not text:
            text = [self.boa_token] * len(audio)
        return images, text, None, audio

    @property
    def model_input_names(self) -> list[str]:
        return super().model_input_names + self.feature_extractor.model_input_names


def add_hearing_to_processor(processor: Gemma3Processor, audio_reduction_factor: int) -> TheWorldProcessor:
    """A Gemma 3 processor's tokenizer and image processor, plus the audio tokens, Gemma 3n's log-mel features
    and the chat template with audio."""
    tokenizer = processor.tokenizer
    tokenizer.add_special_tokens({"additional_special_tokens": AUDIO_TOKENS}, replace_extra_special_tokens=False)
    return TheWorldProcessor(
        processor.image_processor,
        Gemma3nAudioFeatureExtractor(),
        tokenizer,
        chat_template=CHAT_TEMPLATE_WITH_AUDIO,
        image_seq_length=processor.image_seq_length,
        audio_reduction_factor=audio_reduction_factor,
    )


# Defining the processor registers it; Gemma3Processor folders still load as Gemma 3's.
AutoProcessor.register(TheWorldConfig, TheWorldProcessor)
