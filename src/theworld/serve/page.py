"""The web page of `theworld serve`: `/` and its static files, shipped in the package (no build step).

The page answers without the API key, since it holds no data: it asks for the key and sends it with each API call.
Only the files named here are served, so no request path reaches the file system.
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from theworld.serve.errors import APIError

__all__ = ["STATIC", "router"]

STATIC = Path(__file__).resolve().parent / "static"
_SCRIPTS = ("app.js", "api.js", "chat.js", "world.js")
_FILES = {"index.html": "text/html", "style.css": "text/css", **dict.fromkeys(_SCRIPTS, "text/javascript")}
# A changed page reaches a browser that kept the old one as soon as the server restarts.
_HEADERS = {"Cache-Control": "no-cache"}

router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return _file("index.html")


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> FileResponse:
    return _file(name)


def _file(name: str) -> FileResponse:
    if name not in _FILES:
        raise APIError(404, f"/static/{name}: no such file; the page's files are {', '.join(_FILES)}")
    return FileResponse(STATIC / name, media_type=_FILES[name], headers=_HEADERS)
