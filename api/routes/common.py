"""What every v1 route shares: the store, page limits, error documentation."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from fastapi import Path, Query, Request, Response
from pydantic import BaseModel

from lineage_faust.store import MAX_PAGE_SIZE, Store

from ..schemas import Envelope

RunIdPath = Annotated[str, Path(min_length=1, max_length=1024, description="The run's runId")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Most runs per page")]
Cursor = Annotated[
    str | None,
    Query(max_length=4096, description="nextCursor of the previous page (opaque)"),
]

_ERROR_TEXT = {
    400: "Bad parameter or cursor (the envelope's error says which)",
    401: "No or wrong credentials (when LINEAGE_API_USERS / LINEAGE_API_TOKENS are set)",
    404: "Not found",
    409: "Not in a state that allows it (an incident acknowledged or resolved already)",
    413: "Request body too large",
    415: "Unsupported Content-Encoding",
    503: "The store (or, for ingest, the broker) is unavailable; retry shortly",
}


def errors(*codes: int) -> dict:
    """OpenAPI ``responses`` for these status codes, all in the error envelope."""
    return {code: {"model": Envelope, "description": _ERROR_TEXT[code]} for code in codes}


def encoded_names(
    request: Request, collection: str, suffix: str | None, decoded: tuple[str, str]
) -> tuple[str, str]:
    """``/api/v1/<collection>/<namespace>/<name>[/<suffix>]`` split as the client encoded it:
    ``airflow:%2F%2Fprod`` arrives decoded, so the split is redone on the raw path (a name may
    hold an encoded slash too)."""
    raw = request.scope.get("raw_path")
    if raw:
        parts = raw.decode("latin-1").split("/")  # '', api, v1, collection, ns, name, [suffix]
        expected = 7 if suffix else 6
        if len(parts) == expected and parts[3] == collection and (not suffix or parts[6] == suffix):
            return unquote(parts[4]), unquote(parts[5])
    return decoded


def store_of(request: Request) -> Store:
    return request.app.state.store


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """The model as JSON, serialised once by pydantic (a returned Response is not validated
    again against ``response_model``, which stays for the OpenAPI schema)."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")
