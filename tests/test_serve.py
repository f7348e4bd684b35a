"""`theworld serve` as a client sees it, through the official openai package: health, the model list, the API key,
an unknown model, a log line per request, and the command's flags against `ServerSettings`."""

import logging
import time

import httpx
import openai
import pytest
from typer.testing import CliRunner

from theworld.cli.main import app
from theworld.serve.settings import ServerSettings

KEY = "sk-test-key"


def test_health_and_models(served):
    server = served()
    assert httpx.get(f"{server.root}/health").json()["status"] == "ok"
    models = {model.id: model for model in server.client().models.list()}
    chat, world = models["theworld-tiny"], models["toyworld"]
    assert chat.input_modalities == ["text", "image", "video", "audio"]
    assert chat.output_modalities == ["text", "audio"]
    assert world.output_modalities == ["video"]


def test_api_key_guards_every_endpoint_but_health(served):
    server = served(api_key=KEY)
    assert httpx.get(f"{server.root}/health").status_code == 200
    for wrong in ("unused", None):
        headers = {"Authorization": f"Bearer {wrong}"} if wrong else {}
        for method, path in [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/audio/speech")]:
            response = httpx.request(method, f"{server.root}{path}", headers=headers, json={})
            assert response.status_code == 401, (path, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_api_key" and "--api-key" in error["message"]
    with pytest.raises(openai.AuthenticationError):
        server.client().models.list()
    assert [m.id for m in server.client(api_key=KEY).models.list()][0] == "theworld-tiny"


def test_unknown_model_is_404_naming_the_served_one(served):
    client = served().client()
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    error = caught.value.body
    assert error["code"] == "model_not_found" and "theworld-tiny" in error["message"] and error["param"] == "model"


def test_unknown_path_and_bad_json_get_openai_errors(served):
    server = served()
    missing = httpx.get(f"{server.root}/v1/nothing")
    assert missing.status_code == 404 and set(missing.json()["error"]) == {"message", "type", "param", "code"}
    broken = httpx.post(
        f"{server.base_url}/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and "error" in broken.json()


def test_one_log_line_per_request(served, caplog):
    server = served()
    with caplog.at_level(logging.INFO, logger="theworld.serve"):
        httpx.get(f"{server.root}/v1/logged")
        deadline = time.monotonic() + 5  # the line is written once the response has gone out
        while not _lines(caplog) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
    lines = _lines(caplog)
    assert len(lines) == 1, lines
    method, path, status, ms, unit = lines[0].split()
    assert (method, path, status, unit) == ("GET", "/v1/logged", "404", "ms") and float(ms) >= 0


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "theworld.serve" and "/v1/logged" in r.getMessage()]


def test_command_flags_default_to_the_settings():
    import typer.main

    command = typer.main.get_command(app).commands["serve"]
    defaults = {p.name: p.default for p in command.params}
    settings = ServerSettings()
    for name, value in settings.model_dump().items():
        flag = "model_name" if name == "model" else name
        assert defaults[flag] == value, name
    assert "--max-request-mb" in CliRunner().invoke(app, ["serve", "--help"]).output
