"""Speech through the server and the official openai client: a spoken question (espeak-ng) answered as its typed
twin, the ear's transcriptions, the talker's speech (wav, pcm, streamed) and spoken chat answers."""

import base64
import io

import numpy as np
import openai
import pytest
import soundfile
from support import image_part, user_turn

from theworld.evaluation.speech_data import normalize_text
from theworld.omni.audio import synthesize_speech

MODEL = "theworld-tiny"


def wav(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 16_000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def spoken(text: str) -> dict:
    data = base64.b64encode(wav(synthesize_speech(text))).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


@pytest.mark.needs_espeak
def test_a_spoken_question_gets_its_typed_twins_answer(served):
    client = served().client()
    question = "how many shapes are there?"
    typed = client.chat.completions.create(model=MODEL, messages=user_turn(image_part(), question))
    heard = client.chat.completions.create(model=MODEL, messages=user_turn(image_part(), spoken(question)))
    assert heard.choices[0].message.content == typed.choices[0].message.content


@pytest.mark.needs_espeak
def test_transcriptions_are_the_ears_words(served):
    client = served().client()
    recording = wav(synthesize_speech("how many shapes are there?"))
    heard = client.audio.transcriptions.create(model=MODEL, file=("question.wav", recording))
    assert heard.text == ear_alone(recording)
    words = normalize_text(heard.text).split()
    assert words[:3] == ["how", "many", "shapes"] and words[-1] == "there", heard.text  # the content words
    text = client.audio.transcriptions.create(model=MODEL, file=("q.wav", recording), response_format="text")
    assert text.strip() == heard.text


def ear_alone(recording: bytes) -> str:
    """The shipped ear's own greedy reading of a wav, in this process (`theworld.evaluation.speech`)."""
    from transformers import AutoProcessor

    import theworld
    from theworld import TheWorld
    from theworld.evaluation.speech import ctc_transcribe
    from theworld.evaluation.speech_data import mel_features

    model = TheWorld.from_pretrained(theworld.DEFAULT_MODEL).eval()
    processor = AutoProcessor.from_pretrained(theworld.DEFAULT_MODEL)
    samples, _ = soundfile.read(io.BytesIO(recording), dtype="float32")
    return ctc_transcribe(model, processor.tokenizer, mel_features(processor, [samples]))[0].strip()


def test_speech_is_a_wav_the_ear_hears(served):
    client = served().client()
    speech = client.audio.speech.create(model=MODEL, voice="alloy", input="two", response_format="wav")
    samples, rate = soundfile.read(io.BytesIO(speech.content))
    assert rate == 16_000 and 0.2 < len(samples) / rate < 3.0 and np.abs(samples).max() > 0.05
    heard = client.audio.transcriptions.create(model=MODEL, file=("answer.wav", speech.content))
    assert normalize_text(heard.text) == "two"


@pytest.mark.slow
def test_speech_pcm_and_streams_give_the_same_samples(served):
    client = served().client()
    text = "two. top left."
    whole = client.audio.speech.create(model=MODEL, voice="alloy", input=text, response_format="pcm").content
    with client.audio.speech.with_streaming_response.create(
        model=MODEL, voice="alloy", input=text, response_format="pcm", extra_body={"stream": True}
    ) as response:
        pieces = list(response.iter_bytes())
    assert b"".join(pieces) == whole and len(whole) % 2 == 0
    with client.audio.speech.with_streaming_response.create(
        model=MODEL, voice="alloy", input=text, response_format="wav", extra_body={"stream": True}
    ) as response:
        streamed_wav = response.read()
    samples, rate = soundfile.read(io.BytesIO(streamed_wav), dtype="int16")
    assert rate == 16_000 and samples.tobytes() == whole


@pytest.mark.slow
def test_chat_answers_spoken_as_openai_returns_them(served):
    client = served().client()
    request = {
        "model": MODEL,
        "messages": user_turn(image_part(), "how many shapes are there?"),
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "wav"},
    }
    reply = client.chat.completions.create(**request)
    message = reply.choices[0].message
    assert message.audio.id and message.audio.transcript == message.content and message.audio.expires_at > 0
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(message.audio.data)))
    assert rate == 16_000 and len(samples) / rate > 0.2
    chunks = list(client.chat.completions.create(**request, stream=True))
    audio = [c.choices[0].delta.audio for c in chunks if c.choices and c.choices[0].delta.audio]
    assert len(audio) == 1 and audio[0].transcript == message.content and audio[0].data == message.audio.data
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_speech_and_hearing_refused_where_they_cannot_be_done(served, checkpoint):
    client = served().client()
    with pytest.raises(openai.BadRequestError, match="response_format"):
        client.audio.speech.create(model=MODEL, voice="alloy", input="two", response_format="mp3")
    with pytest.raises(openai.BadRequestError, match="not a recording"):
        client.audio.transcriptions.create(model=MODEL, file=("scene.png", image_part()["image_url"]["url"].encode()))
    mute = served(model=str(checkpoint))  # a random test model: no talker, no ears
    model, mute_client = str(checkpoint), mute.client()
    with pytest.raises(openai.BadRequestError, match="cannot speak"):
        mute_client.audio.speech.create(model=model, voice="alloy", input="two")
    with pytest.raises(openai.BadRequestError, match="cannot speak"):
        mute_client.chat.completions.create(
            model=model,
            messages=user_turn("two"),
            modalities=["text", "audio"],
            audio={"voice": "alloy", "format": "wav"},
        )
    silence = base64.b64encode(wav(np.zeros(1600, dtype=np.float32))).decode()
    with pytest.raises(openai.BadRequestError, match="cannot hear"):
        mute_client.chat.completions.create(
            model=model, messages=user_turn({"type": "input_audio", "input_audio": {"data": silence, "format": "wav"}})
        )
    assert [m.output_modalities for m in mute_client.models.list()][0] == ["text"]
