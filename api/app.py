"""The FastAPI application factory and the ``lineage-faust api`` runner."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from lineage_faust import __version__
from lineage_faust.retry import retry_forever
from lineage_faust.settings import ConfigError, Settings, refuse_open_bind
from lineage_faust.store import Store, StoreError, store_for

from .auth import Authenticator, authenticated
from .errors import install_error_handlers
from .ingest import Forwarder
from .metrics import ApiMetrics, MetricsMiddleware
from .routes import (
    alerts,
    atlas,
    board,
    datasets,
    dead_letters,
    graph,
    incidents,
    jobs,
    lineage,
    runs,
    service,
    stream,
)

log = logging.getLogger(__name__)

DESCRIPTION = """Live run-operations data from OpenLineage events.

* **Atlas** (`/api/atlas/v2/openlineage/...`): Atlas's OpenLineage endpoints, unchanged.
* **v1**: a run's status with its parent and children, run listings by state and time, a
  job's history, datasets (last good write, freshness, readers/writers, a failed run's
  downstream impact), alerts, dead letters, the live stream of run-state changes and alerts
  (`/api/v1/stream`, Server-Sent Events), and `POST /api/v1/lineage` (OpenLineage's HTTP
  transport). The ops board is at `/`.

Every error is the envelope `{"success": false, "error": "..."}` with a fitting status.
Credentials (HTTP Basic or bearer) are needed everywhere except health and `/metrics` when
`LINEAGE_API_USERS` / `LINEAGE_API_TOKENS` are set. Cursors are opaque: pass `nextCursor`
back as `cursor`.
"""


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    store = store or store_for(settings)
    forwarder = Forwarder(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A store that is down at start must not keep the API from serving its 503s (and
        # health) meanwhile: keep trying in the background. A schema newer than this code
        # (SchemaError) stops the start instead. The broker is only needed by HTTP ingest.
        opening: asyncio.Task | None = None
        try:
            await store.open()
        except StoreError as exc:
            log.warning("api: store %s unavailable (%s); retrying", settings.describe_store(), exc)
            opening = asyncio.create_task(retry_forever("open store", store.open, retry=StoreError))
        else:
            log.info("api: store %s", settings.describe_store())
        forwarder.start()
        # What start-up built lives as long as the process: out of the collector's reach, a
        # full collection no longer walks it (the tail of the API's latency, as in the worker)
        gc.freeze()
        try:
            yield
        finally:
            if opening is not None:
                opening.cancel()
            await forwarder.stop()
            await store.close()

    app = FastAPI(
        title="lineage-faust",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below, behind the same credentials as the data
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.forwarder = forwarder
    app.state.authenticator = Authenticator(settings.api_auth)
    app.state.metrics = ApiMetrics()
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    install_error_handlers(app)
    guarded = [Depends(authenticated)]
    app.include_router(atlas.router)  # guards its lookups itself; its health stays open
    for module in (
        runs,
        jobs,
        datasets,
        alerts,
        incidents,
        dead_letters,
        lineage,
        graph,
        stream,
        board,
    ):
        app.include_router(module.router, dependencies=guarded)
    app.include_router(service.router)

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="lineage-faust API")

    return app


def run_api(settings: Settings) -> None:
    import uvicorn

    refusal = refuse_open_bind(settings.api_host, settings.api_auth)
    if refusal:
        raise ConfigError(refusal)
    if not settings.api_auth.enabled:
        log.warning(
            "api: authentication is off (no LINEAGE_API_USERS / LINEAGE_API_TOKENS); "
            "listening on loopback %s only",
            settings.api_host,
        )
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
