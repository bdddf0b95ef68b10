"""The ops board: one static page (no build step) that reads the v1 API and the live stream."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["board"])


@cache
def board_html() -> str:
    return (files("api") / "static" / "board.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, responses={401: {"description": "Credentials"}})
async def board() -> HTMLResponse:
    """Runs running now, recent failures, alerts and counts by state, updated live; a runId
    search opens a run's timeline and task runs."""
    return HTMLResponse(board_html())
