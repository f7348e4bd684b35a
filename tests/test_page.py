"""The page `theworld serve` serves at `/`: its files without the API key, and what browsers record (webm/opus)
heard by the server; then the page driven in a real headless Chromium (Debian's chromium and chromium-driver, through
selenium) against a real server: an image question with the frames the model imagined, the world-steps slider, a
multi-turn history, a video job played in the page, a spoken question recorded by Chromium's fake microphone with a
spoken answer, the API key, and a refusal shown inline. Each browser test saves screenshots in its tmp_path."""

import base64
import io
import json
import shutil
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import soundfile
from support import image_part, user_turn

from theworld.evaluation.speech_data import normalize_text
from theworld.omni.audio import synthesize_speech
from theworld.serve.errors import APIError
from theworld.serve.inputs import read_audio
from theworld.serve.settings import ServerSettings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCENE = EXAMPLES / "toyworld_scene.png"
SPEC = EXAMPLES / "toyworld_image2world.json"
QUESTION = "how many shapes are there?"
WAIT = 120  # seconds any one step may take on a busy 2-core machine; each wait ends as soon as its condition holds
KEY = "page-secret"
# The page's server: a key to ask for, and a media limit the scene's 423 bytes are over.
GUARDED = {"api_key": KEY, "max_media_mb": 0.0002}


def in_chromium(test):
    """A test in the real browser: skipped where chromium is missing (see conftest), and in the slow tier."""
    return pytest.mark.needs_chromium(pytest.mark.slow(test))


def webm(samples: np.ndarray) -> bytes:
    """16 kHz samples as webm/opus, what Chromium's MediaRecorder makes."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None], format="flt", layout="mono")
        frame.rate = 16_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def test_the_page_and_its_files_answer_without_the_key(served):
    root = served(**GUARDED).root
    page = httpx.get(f"{root}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in page.text
    for name, kind in [("app.js", "text/javascript"), ("world.js", "text/javascript"), ("style.css", "text/css")]:
        response = httpx.get(f"{root}/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
    missing = httpx.get(f"{root}/static/page.py")
    assert missing.status_code == 404 and "app.js" in missing.json()["error"]["message"]
    assert httpx.get(f"{root}/static/..%2Fpage.py").status_code == 404
    assert httpx.get(f"{root}/v1/models").status_code == 401  # the API still asks for the key


@pytest.mark.needs_espeak
def test_a_browser_recording_is_heard_as_its_wav(served):
    client = served().client()
    question = synthesize_speech(QUESTION)
    wav = io.BytesIO()
    soundfile.write(wav, question, 16_000, format="WAV", subtype="PCM_16")
    recordings = {"wav": wav.getvalue(), "webm": webm(question)}
    heard = {
        name: client.audio.transcriptions.create(model="theworld-tiny", file=(f"question.{name}", data)).text
        for name, data in recordings.items()
    }
    assert heard["webm"] == heard["wav"]
    words = normalize_text(heard["wav"])  # the question's words that say what it asks, punctuation aside
    assert words.startswith("how many shapes") and words.endswith("there"), heard
    answers = {}
    for name, data in recordings.items():
        spoken = {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": name}}
        reply = client.chat.completions.create(model="theworld-tiny", messages=user_turn(image_part(), spoken))
        answers[name] = reply.choices[0].message.content
    assert answers["webm"] == answers["wav"]


def test_a_browser_recording_is_timed_before_it_is_decoded():
    # MediaRecorder's webm holds no duration: the length comes from its packets, checked before decoding.
    second = np.sin(np.arange(16_000, dtype=np.float32) * 0.05)
    tight = ServerSettings(max_audio_seconds=0.5)
    with pytest.raises(APIError, match="1.0 seconds is too large.*--max-audio-seconds") as refused:
        read_audio(io.BytesIO(webm(second)), tight, "file")
    assert refused.value.status == 413
    assert len(read_audio(io.BytesIO(webm(second)), ServerSettings(), "file")) == pytest.approx(16_000, abs=400)
    with pytest.raises(APIError, match="not a recording the server can read"):
        read_audio(io.BytesIO(b"\x1aE\xdf\xa3 not a webm"), ServerSettings(), "file")


@pytest.fixture(scope="module")
def microphone(tmp_path_factory) -> Path | None:
    """The question spoken by espeak-ng, as a wav for Chromium's fake microphone (None without espeak-ng)."""
    if shutil.which("espeak-ng") is None:
        return None
    recording = tmp_path_factory.mktemp("microphone") / "question.wav"
    soundfile.write(recording, synthesize_speech(QUESTION), 16_000, subtype="PCM_16")
    return recording


@pytest.fixture(scope="module")
def browser(microphone):
    """One headless Chromium for the module; its microphone says the spoken question once, then is silent."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):  # THEWORLD_REQUIRE_CHROMIUM asked for them
        pytest.fail("chromium or chromedriver is not on PATH; apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        *([f"--use-file-for-fake-audio-capture={microphone}%noloop"] if microphone else []),
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    yield driver
    driver.quit()


class Page:
    """The page in the browser, with explicit waits: every step waits for what it needs, never for a fixed time."""

    def __init__(self, driver, root: str, screenshots: Path):
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.screenshots = driver, screenshots
        self.waiter = WebDriverWait(driver, WAIT)
        driver.set_window_size(1280, 900)
        driver.get(root)
        self.wait(lambda _: self.js("return document.body.dataset.ready") == "true", "the page to load the models")

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait(self, condition, what: str):
        return self.waiter.until(condition, message=f"waited {WAIT} s for {what}")

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.screenshots / f"{name}.png"))

    def ask(self, text: str) -> dict:
        """Type a question, send it with Enter, and wait for the answer to end: its text, state and strips."""
        from selenium.webdriver.common.keys import Keys

        answers = len(self.driver.find_elements("css selector", "#history li.assistant"))
        self.find("#message").send_keys(text, Keys.ENTER)
        return self.last_answer(answers + 1)

    def last_answer(self, count: int) -> dict:
        script = """
            const answers = document.querySelectorAll('#history li.assistant');
            const last = answers[answers.length - 1];
            if (answers.length < arguments[0] || last.dataset.state === 'streaming') return null;
            return {
                state: last.dataset.state,
                text: last.querySelector('.text').textContent,
                error: (last.querySelector('.error') || {}).textContent || null,
                strips: [...last.querySelectorAll('.strip')].map(strip => strip.querySelectorAll('img').length),
                audio: [...last.querySelectorAll('audio')].map(audio => audio.src.slice(0, 22)),
            };"""
        return self.wait(lambda _: self.js(script, count), "the answer")


@in_chromium
def test_an_image_question_shows_the_imagined_frames_and_the_slider_changes_them(served, browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    server = served()
    page = Page(browser, server.root, tmp_path)
    steps = page.find("#steps")
    model = httpx.get(f"{server.base_url}/models").json()["data"][0]
    assert steps.get_attribute("max") == str(model["max_world_steps"])
    k = int(steps.get_attribute("value"))
    assert k == model["num_world_steps"] > 0
    page.find("#attach").send_keys(str(SCENE))
    page.wait(lambda _: page.js("return document.querySelector('#attachments img') !== null"), "the attached image")
    page.shot("attached")
    first = page.ask(QUESTION)
    page.shot("answered")
    assert first["state"] == "done" and first["text"].strip() and first["strips"] == [k + 1]
    steps.send_keys(Keys.HOME)  # the slider's keyboard: to its minimum, 0 steps
    assert page.find("#steps-value").text == "0"
    second = page.ask(QUESTION)  # no new image: the first turn's, carried in the history
    page.shot("no-world-steps")
    assert second["state"] == "done" and second["text"].strip() and second["strips"] == [1]
    assert len(browser.find_elements("css selector", "#history li")) == 4
    browser.set_window_size(375, 812)
    assert page.js("return document.documentElement.scrollWidth") <= 375  # nothing wider than a phone
    page.shot("phone")


@in_chromium
def test_a_world_job_plays_in_the_page(served, browser, tmp_path):
    page = Page(browser, served().root, tmp_path)
    page.find("#tab-world").click()
    page.find("#spec-file").send_keys(str(SPEC))
    spec = json.loads(SPEC.read_text())
    page.wait(lambda _: page.find("#world-prompt").get_attribute("value") == spec["prompt"], "the spec's fields")
    assert page.find("#world-type").get_attribute("value") == "image2world"
    assert spec["input_path"] in page.find("#world-note").text
    page.find("#world-input").send_keys(str(SCENE))
    page.find("#world-submit").click()
    page.wait(lambda _: page.js("return document.querySelector('#job-video').readyState >= 1"), "the video's metadata")
    duration = page.js("return document.querySelector('#job-video').duration")
    assert duration > 0
    page.wait(lambda _: page.js("return document.querySelector('#job-video').currentTime > 0"), "the video to play")
    assert page.find("#job-download").get_attribute("href").startswith("blob:")
    assert page.find("#job-progress").get_attribute("value") == "100"
    page.shot("world")


@in_chromium
@pytest.mark.needs_espeak
def test_a_spoken_question_gets_a_spoken_answer(served, browser, microphone, tmp_path):
    page = Page(browser, served().root, tmp_path)
    page.find("#attach").send_keys(str(SCENE))
    page.find("#record").click()
    # Chromium's fake microphone says the question as the recording starts: record a little more than it lasts.
    enough = soundfile.info(microphone).duration + 0.5
    recorded = "return Number(document.querySelector('#record').dataset.seconds || 0)"
    page.wait(lambda _: page.js(recorded) >= enough, f"{enough:.1f} s of recording")
    page.find("#record").click()
    page.wait(lambda _: page.js("return document.querySelector('#attachments audio') !== null"), "the recording")
    page.find("#speak").click()
    page.shot("recorded")
    page.find("#send").click()
    answer = page.last_answer(1)
    page.shot("spoken")
    assert answer["state"] == "done" and answer["text"].strip(), answer
    assert answer["audio"] == ["data:audio/wav;base64,"]
    spoken = "return document.querySelector('#history li.assistant audio').duration"
    page.wait(lambda _: (page.js(spoken) or 0) > 0, "the spoken answer's duration")


@in_chromium
def test_the_key_is_asked_for_and_a_refusal_is_shown_inline(served, browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    server = served(**GUARDED)
    page = Page(browser, server.root, tmp_path)
    assert "API key" in page.find("#status").text
    page.find("#api-key").send_keys(KEY, Keys.TAB)
    page.wait(lambda _: not page.find("#status").is_displayed(), "the models, with the key")
    assert page.js("return sessionStorage.getItem('theworld-api-key')") == KEY
    page.js(
        """const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const drop = new DataTransfer();
        drop.items.add(new File([bytes], 'scene.png', {type: 'image/png'}));
        document.querySelector('#chat').dispatchEvent(new DragEvent('drop', {dataTransfer: drop, bubbles: true}));""",
        base64.b64encode(SCENE.read_bytes()).decode(),
    )
    page.wait(lambda _: page.js("return document.querySelector('#attachments img') !== null"), "the dropped image")
    answer = page.ask(QUESTION)
    page.shot("refused")
    assert answer["state"] == "error" and "--max-media-mb" in answer["error"], answer
    assert page.find("#history li.assistant .error").is_displayed()
