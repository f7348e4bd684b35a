"""`GET /v1/models`: the chat model and the world model, with their modalities as llama.cpp's server reports them;
and the check every endpoint makes that a request names the model served here."""

import time

from fastapi import APIRouter, Request

from theworld.modeling.configuration_theworld import TheWorldConfig
from theworld.serve.errors import APIError
from theworld.serve.protocol import ModelCard, ModelList
from theworld.serve.settings import ServerSettings

__all__ = ["check_model", "router"]

router = APIRouter()
_STARTED = int(time.time())


def check_model(name: str, settings: ServerSettings, world: bool = False) -> None:
    """404 unless `name` is the chat model (or, for video jobs, the world model) this server serves."""
    served = settings.world_model if world else settings.model
    if name != served:
        raise APIError(
            404,
            f"model {name!r} is not served here; this server serves {served!r} (see GET /v1/models)",
            "model",
            "model_not_found",
        )


@router.get("/v1/models")
async def list_models(request: Request) -> ModelList:
    settings: ServerSettings = request.app.state.settings
    engine = request.app.state.engine
    hearing = ["audio"] if engine.can_hear else []
    speech = ["audio"] if engine.speaker is not None else []
    chat = ModelCard(
        id=settings.model,
        created=_STARTED,
        input_modalities=["text", "image", "video", *hearing],
        output_modalities=["text", *speech],
        **_world_steps(engine.model.config),
    )
    world = ModelCard(
        id=settings.world_model,
        created=_STARTED,
        input_modalities=["text", "image", "video"],
        output_modalities=["video"],
    )
    return ModelList(data=[chat, world])


def _world_steps(config: TheWorldConfig) -> dict:
    """The chat model's default and largest `num_world_steps`; nothing for a model without the world."""
    if not config.enable_world:
        return {}
    return {"num_world_steps": config.num_world_steps, "max_world_steps": config.max_world_steps}
