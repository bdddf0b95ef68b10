"""Walking the lineage graph as a pure function: directions, depth, the node limit, and
Marquez's node ids with colons in namespaces."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lineage_faust.domain.lineage import (
    Direction,
    dataset_node,
    downstream_of,
    job_node,
    nearest_failed,
    parse_node_id,
    radius_summary,
    walk,
)

DB = "postgres://db:5432"
RAW, STG, MART = (dataset_node(DB, n) for n in ("raw.orders", "stg.orders", "mart.revenue"))
LOAD, MODEL = job_node("dbt://wh", "stg_orders"), job_node("dbt://wh", "revenue")
# raw.orders -> stg_orders -> stg.orders -> revenue -> mart.revenue
FLOWS = [(RAW, LOAD), (LOAD, STG), (STG, MODEL), (MODEL, MART)]


async def neighbours(nodes):
    return {
        n: [(b, "out") for a, b in FLOWS if a == n] + [(a, "in") for a, b in FLOWS if b == n]
        for n in nodes
    }


async def test_directions_and_depth() -> None:
    down = await walk(LOAD, neighbours, Direction.DOWNSTREAM, depth=10)
    assert down.nodes == [LOAD, STG, MODEL, MART] and down.edges == set(FLOWS[1:])
    up = await walk(MODEL, neighbours, Direction.UPSTREAM, depth=10)
    assert up.nodes == [MODEL, STG, LOAD, RAW] and up.edges == set(FLOWS[:3])
    both = await walk(STG, neighbours, Direction.BOTH, depth=1)
    assert set(both.nodes) == {STG, LOAD, MODEL} and both.depth_of[MODEL] == 1
    assert both.in_edges(STG) == [(LOAD, STG)] and both.out_edges(STG) == [(STG, MODEL)]
    assert downstream_of(down, [LOAD]) == ([STG, MART], [MODEL])


async def test_the_node_limit_cuts_the_graph_and_says_so() -> None:
    graph = await walk(RAW, neighbours, Direction.DOWNSTREAM, depth=10, limit=3)
    assert graph.nodes == [RAW, LOAD, STG] and graph.truncated
    assert all(a in graph.depth_of and b in graph.depth_of for a, b in graph.edges)
    whole = await walk(RAW, neighbours, Direction.DOWNSTREAM, depth=10, limit=5)
    assert not whole.truncated and len(whole.nodes) == 5


def test_node_ids_are_marquezs() -> None:
    assert parse_node_id(f"dataset:{DB}:raw.orders") == RAW
    assert RAW.id == "dataset:postgres://db:5432:raw.orders"
    assert parse_node_id("job:dbt://wh:stg_orders") == LOAD
    for bad in ("table:x:y", "job:only", "dataset::name", "job:ns:"):
        with pytest.raises(ValueError, match="expected dataset:<namespace>:<name>"):
            parse_node_id(bad)


async def test_the_likely_cause_is_the_nearest_failed_job_upstream() -> None:
    early, late = datetime(2026, 12, 1, 1, tzinfo=UTC), datetime(2026, 12, 1, 2, tzinfo=UTC)
    up = await walk(MART, neighbours, Direction.UPSTREAM, depth=10)
    assert (
        nearest_failed(up, {LOAD: ("r1", "COMPLETE", early), MODEL: ("r2", "COMPLETE", late)})
        is None
    )
    cause = nearest_failed(up, {LOAD: ("r1", "FAIL", early), MODEL: ("r2", "COMPLETE", late)})
    assert cause is not None and (cause.job, cause.run_id, cause.distance) == (LOAD, "r1", 3)
    # the nearer failure wins over the earlier one; the start itself is never its own cause
    nearer = nearest_failed(up, {LOAD: ("r1", "FAIL", early), MODEL: ("r2", "ABORT", late)})
    assert nearer is not None and nearer.job == MODEL and nearer.distance == 1
    from_model = await walk(MODEL, neighbours, Direction.UPSTREAM, depth=10)
    assert nearest_failed(from_model, {MODEL: ("r2", "FAIL", late)}) is None
    # a job outside the walked graph is not a cause
    assert nearest_failed(from_model, {job_node("x", "y"): ("r3", "FAIL", early)}) is None
    summary = radius_summary(await walk(LOAD, neighbours, Direction.DOWNSTREAM), [LOAD], cause)
    assert summary["likelyCause"] == {
        "namespace": "dbt://wh",
        "name": "stg_orders",
        "runId": "r1",
        "state": "FAIL",
        "endedAt": "2026-12-01T01:00:00.000Z",
        "distance": 3,
    }
