"""The ops board: one static page (no build step) that reads the v1 API and the live stream."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(tags=["board"])


@cache
def board_html() -> str:
    return (files("api") / "static" / "board.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, responses={401: {"description": "Credentials"}})
async def board() -> HTMLResponse:
    """Runs running now, recent failures, alerts and counts by state, updated live; a page
    of its own for a run, a job, a dataset, an incident and the lineage graph around any of
    them (``#run/<id>``, ``#job/<ns>/<name>``, ``#dataset/<ns>/<name>``, ``#incident/<id>``,
    ``#lineage/<nodeId>``); a runId search opens a run."""
    return HTMLResponse(board_html())


@cache
def vendored(name: str) -> bytes:
    return (files("api") / "static" / "vendor" / name).read_bytes()


@router.get("/board/vendor/dagre.min.js", include_in_schema=False)
async def dagre() -> Response:
    """The lineage view's layout library (MIT, see api/static/vendor/README.md)."""
    return Response(
        vendored("dagre.min.js"),
        media_type="text/javascript",
        headers={"Cache-Control": "max-age=86400"},
    )
