"""`POST /v1/chat/completions` through the official openai client: answers equal the library's, world steps and
frames, usage with world tokens, streams, multi-turn history, n, seed, stop, video, file:// media, and batching:
concurrent requests answered by one `generate` get exactly what each gets alone."""

import base64
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from PIL import Image
from support import data_uri, image_part, make_image, user_turn

from theworld import DEFAULT_MODEL, TheWorld
from theworld.chat import ChatSession
from theworld.media import write_mp4

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCENE = EXAMPLES / "toyworld_scene.png"
MODEL = "theworld-tiny"


@pytest.fixture(scope="module")
def library():
    """The shipped model, used directly: what the server must answer."""
    return TheWorld.from_pretrained(DEFAULT_MODEL).eval()


@pytest.fixture(scope="module")
def random_server(served, checkpoint):
    """A random tiny model: long answers that seldom end, so batching, stop strings and streams have text to show."""
    return served(model=str(checkpoint), max_batch_size=8, batch_wait_ms=100)


def test_image_question_with_world_steps_frames_and_usage(served, library):
    client = served().client()
    question = "how many shapes are there?"
    response = client.chat.completions.create(
        model=MODEL,
        messages=user_turn(image_part(), question),
        max_tokens=16,
        extra_body={"num_world_steps": 2, "return_world_frames": True},
    )
    answer = library.ask(Image.open(SCENE), question, num_world_steps=2, max_new_tokens=16)
    assert response.choices[0].message.content == answer and response.choices[0].finish_reason == "stop"
    world = response.model_extra["world"]
    assert len(world) == 1 and world[0]["image"] == 0 and len(world[0]["frames"]) == 1 + 2
    header, _, data = world[0]["frames"][1].partition(",")
    assert header == "data:image/png;base64"
    assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 0
    world_tokens = (1 + 2) * library.tokens_per_world_step + 2
    usage = response.usage
    assert usage.prompt_tokens_details.world_tokens == world_tokens
    prompt = library.processor.apply_chat_template(
        [
            {
                "role": "user",
                "content": [{"type": "image", "image": Image.open(SCENE)}, {"type": "text", "text": question}],
            }
        ],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
    )
    assert usage.prompt_tokens == len(prompt["input_ids"][0]) + world_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens and usage.completion_tokens >= 1


def test_multi_turn_history_answers_as_a_chat_session(served, library):
    client = served().client()
    session = ChatSession(library, system_prompt="answer briefly.")
    session.attach_image(SCENE)
    first = session.reply("how many shapes are there?", max_new_tokens=16, do_sample=False)
    second = session.reply("where is the red shape?", max_new_tokens=16, do_sample=False)
    messages = [
        {"role": "system", "content": "answer briefly."},
        *user_turn(image_part(), "how many shapes are there?"),
        {"role": "assistant", "content": first},
        {"role": "user", "content": "where is the red shape?"},
    ]
    response = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16, temperature=0)
    assert response.choices[0].message.content == second


def test_stream_sends_the_answer_in_chunks_then_usage_then_done(random_server):
    body = {
        "model": str(random_server.settings.model),
        "messages": user_turn(image_part(make_image(1)), "where is the red ball?"),
        "max_tokens": 40,
    }
    whole = random_server.client().chat.completions.create(**body)
    with httpx.stream(
        "POST",
        f"{random_server.base_url}/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
        timeout=60,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole.choices[0].message.content and len(chunks) > 5
    finish = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]
    assert finish[-1] == whole.choices[0].finish_reason and not any(finish[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole.usage.model_dump(exclude_none=True)


def test_n_seed_and_stop(random_server):
    client, model = random_server.client(), str(random_server.settings.model)
    messages = user_turn("is the blue square falling?")
    greedy = client.chat.completions.create(model=model, messages=messages, max_tokens=30, n=3)
    texts = [choice.message.content for choice in greedy.choices]
    assert [c.index for c in greedy.choices] == [0, 1, 2] and len(set(texts)) == 1
    assert greedy.usage.completion_tokens == 3 * 30

    def sampled(seed: int) -> list[str]:
        reply = client.chat.completions.create(
            model=model, messages=messages, max_tokens=20, n=2, temperature=1.0, seed=seed
        )
        return [choice.message.content for choice in reply.choices]

    assert sampled(7) == sampled(7) != sampled(8)

    text = texts[0]
    stop = text[8:11]
    expected = text[: text.index(stop)]
    stopped = client.chat.completions.create(model=model, messages=messages, max_tokens=30, stop=[stop, "never"])
    assert stopped.choices[0].message.content == expected and stopped.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(model=model, messages=messages, max_tokens=30, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected


def _conversations() -> list[list[dict]]:
    return [
        user_turn(image_part(make_image(2)), "where is the red ball?"),
        user_turn("how many shapes are there in this picture, can you count them?"),
        user_turn(image_part(make_image(3)), "is the blue square falling?"),
        user_turn("which shape moves faster?"),
        user_turn(image_part(make_image(4)), image_part(make_image(5)), "which picture has more shapes?"),
        [{"role": "system", "content": "be brief"}, *user_turn(image_part(make_image(6)), "where?")],
        user_turn("top left"),
        user_turn(image_part(make_image(7)), "two"),
    ]


def test_concurrent_requests_share_one_generate_and_get_what_they_get_alone(served, checkpoint, random_server):
    model = str(checkpoint)
    alone = served(model=model, max_batch_size=1).client()
    conversations = _conversations()
    expected = [
        alone.chat.completions.create(model=model, messages=m, max_tokens=12 + i).choices[0].message.content
        for i, m in enumerate(conversations)
    ]
    before = httpx.get(f"{random_server.root}/health").json()["batches"]
    client = random_server.client()

    def ask(i: int) -> str:
        request = {"model": model, "messages": conversations[i], "max_tokens": 12 + i}
        if i % 2:  # half of them stream, batched with the others
            stream = client.chat.completions.create(**request, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        return client.chat.completions.create(**request).choices[0].message.content

    with ThreadPoolExecutor(len(conversations)) as pool:
        answers = list(pool.map(ask, range(len(conversations))))
    assert answers == expected
    health = httpx.get(f"{random_server.root}/health").json()
    assert health["largest_batch"] > 1 and health["batches"] - before < len(conversations), health


def test_a_client_that_leaves_a_stream_ends_its_row(random_server):
    model, client = str(random_server.settings.model), random_server.client()
    messages = user_turn("where is the red ball?")
    began = time.monotonic()
    assert (
        client.chat.completions.create(model=model, messages=messages, max_tokens=200).choices[0].finish_reason
        == "length"
    )
    two_hundred = time.monotonic() - began  # this answer never ends by itself: 1000 tokens take five times as long
    request = {"model": model, "messages": messages, "max_tokens": 1000, "stream": True}
    with httpx.stream("POST", f"{random_server.base_url}/chat/completions", json=request, timeout=60) as response:
        lines = response.iter_lines()
        assert [next(lines) for _ in range(6)]  # some of the answer arrived, then the client goes
    left = time.monotonic()
    health = f"{random_server.root}/health"
    while httpx.get(health).json()["active_rows"] and time.monotonic() < left + 30:
        time.sleep(0.02)
    assert httpx.get(health).json()["active_rows"] == 0 and time.monotonic() - left < 2 * two_hundred
    assert client.chat.completions.create(model=model, messages=user_turn("two"), max_tokens=3).choices


@pytest.mark.slow
def test_sixteen_concurrent_clients_without_an_error(served):
    client = served().client()
    questions = ["how many shapes are there?", "where is the red shape?", "is the blue shape falling?"]
    reference = {
        q: client.chat.completions.create(model=MODEL, messages=user_turn(image_part(), q)).choices[0].message.content
        for q in questions
    }
    errors: list[Exception] = []

    def chat(worker: int) -> None:
        for turn in range(3):
            question = questions[(worker + turn) % 3]
            try:
                if (worker + turn) % 2:
                    stream = client.chat.completions.create(
                        model=MODEL, messages=user_turn(image_part(), question), stream=True
                    )
                    answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                else:
                    reply = client.chat.completions.create(model=MODEL, messages=user_turn(image_part(), question))
                    answer = reply.choices[0].message.content
                assert answer == reference[question]
            except Exception as error:  # noqa: BLE001 - every failure is reported below
                errors.append(error)

    threads = [threading.Thread(target=chat, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_video_is_read_as_a_chat_session_reads_it(served, library, tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (12, 48, 48, 3), dtype=np.uint8)
    write_mp4(tmp_path / "clip.mp4", frames, fps=4)
    session = ChatSession(library)
    session.attach_video(tmp_path / "clip.mp4")
    expected = session.reply("how many shapes are there?", max_new_tokens=16, do_sample=False)
    video = {"type": "video_url", "video_url": {"url": data_uri((tmp_path / "clip.mp4").read_bytes(), "video/mp4")}}
    response = (
        served()
        .client()
        .chat.completions.create(
            model=MODEL,
            messages=user_turn(video, "how many shapes are there?"),
            max_tokens=16,
            extra_body={"return_world_frames": True},
        )
    )
    assert response.choices[0].message.content == expected
    assert len(response.model_extra["world"][0]["frames"]) == 1 + library.config.num_world_steps


def test_file_urls_only_under_the_allowed_path(served):
    inside = served(allowed_media_path=EXAMPLES).client()
    part = {"type": "image_url", "image_url": {"url": SCENE.as_uri()}}
    assert inside.chat.completions.create(model=MODEL, messages=user_turn(part, "how many shapes are there?")).choices
    outside = {"type": "image_url", "image_url": {"url": (EXAMPLES.parent / "README.md").as_uri()}}
    with pytest.raises(openai.BadRequestError, match="outside --allowed-media-path"):
        inside.chat.completions.create(model=MODEL, messages=user_turn(outside, "what is this?"))
    with pytest.raises(openai.BadRequestError, match="--allowed-media-path"):
        served().client().chat.completions.create(model=MODEL, messages=user_turn(part, "what is this?"))
