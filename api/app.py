"""The FastAPI application factory and the ``lineage-faust api`` runner."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lineage_faust import __version__
from lineage_faust.config import Settings
from lineage_faust.retry import retry_forever
from lineage_faust.store import Store, StoreError, store_for

from .errors import install_error_handlers
from .routes import atlas, runs

log = logging.getLogger(__name__)


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    store = store or store_for(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A store that is down at start must not keep the API from serving its 503s (and
        # health) meanwhile: keep trying in the background. A schema newer than this code
        # (SchemaError) stops the start instead.
        opening: asyncio.Task | None = None
        try:
            await store.open()
        except StoreError as exc:
            log.warning("api: store %s unavailable (%s); retrying", settings.describe_store(), exc)
            opening = asyncio.create_task(retry_forever("open store", store.open, retry=StoreError))
        else:
            log.info("api: store %s", settings.describe_store())
        try:
            yield
        finally:
            if opening is not None:
                opening.cancel()
            await store.close()

    app = FastAPI(
        title="lineage-faust",
        version=__version__,
        description="Live run-operations data from OpenLineage events.",
        lifespan=lifespan,
    )
    app.state.store = store
    install_error_handlers(app)
    app.include_router(atlas.router)
    app.include_router(runs.router)
    return app


def run_api(settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
