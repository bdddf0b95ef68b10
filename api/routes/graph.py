"""``GET /api/v1/lineage``: the lineage graph around a dataset, a job or a run's job, in
Marquez's shape, with each job's latest run and each dataset's freshness on its node."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from lineage_faust.domain.lineage import MAX_DEPTH, MAX_NODES, Direction, job_node, parse_node_id
from lineage_faust.store.lineage_walk import graph_around

from .. import lineage_graph
from ..errors import ApiError
from ..schemas import LineageGraph
from .common import errors, store_of

router = APIRouter(prefix="/api/v1", tags=["lineage"])


@router.get("/lineage", response_model=LineageGraph, responses=errors(400, 401, 404, 503))
async def lineage(
    request: Request,
    nodeId: Annotated[
        str,
        Query(
            min_length=5,
            max_length=2100,
            description="dataset:<namespace>:<name>, job:<namespace>:<name> or run:<runId> "
            "(its job)",
        ),
    ],
    depth: Annotated[int, Query(ge=1, le=MAX_DEPTH)] = 5,
    direction: Direction = Direction.BOTH,
    limit: Annotated[int, Query(ge=1, le=MAX_NODES, description="Nodes at most")] = 500,
) -> Response:
    """The jobs and datasets ``depth`` edges from the node (``upstream``: what it reads from,
    ``downstream``: what reads from it, ``both``), edges pointing the way data flows."""
    store = store_of(request)
    if nodeId.startswith("run:"):
        run = await store.get_run_status(nodeId[4:])
        if run is None:
            raise ApiError(404, f"no run {nodeId[4:]}")
        start = job_node(run.namespace, run.job)
    else:
        try:
            start = parse_node_id(nodeId)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
    graph = await graph_around(store, start, direction, depth, limit)
    if len(graph.depth_of) == 1 and not graph.edges:
        seen = (
            await store.job_datasets(start.namespace, start.name)
            if start.is_job
            else await store.dataset_jobs(start.namespace, start.name)
        )
        if not seen:
            raise ApiError(404, f"no lineage known for {start.id}")
    data = await lineage_graph.node_data(store, graph)
    # built as plain data and encoded once: checking hundreds of nodes against the model would
    # cost more than the walk (the model documents the shape; tests check the two agree)
    body = {
        "success": True,
        "graph": lineage_graph.marquez_graph(graph, data),
        "truncated": graph.truncated,
    }
    return Response(orjson.dumps(body), media_type="application/json")
