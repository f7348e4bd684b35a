"""The API key, as a FastAPI dependency: with `--api-key` (or THEWORLD_API_KEY) set, every route it guards answers
401 to a request without `Authorization: Bearer KEY`."""

import secrets

from fastapi import Request

from theworld.serve.errors import APIError

__all__ = ["require_api_key"]


async def require_api_key(request: Request) -> None:
    expected = request.app.state.settings.api_key
    if not expected:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected.encode()):
        raise APIError(
            401,
            "missing or wrong API key: send `Authorization: Bearer KEY` with the server's --api-key "
            "(or THEWORLD_API_KEY)",
            code="invalid_api_key",
        )
