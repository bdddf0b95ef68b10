"""The lineage graph read from any store's dataset tables (``job_datasets``, ``dataset_jobs``,
kept as events arrive): the neighbours of a level of nodes, in one ``LineageReads.links_of``,
for ``domain.lineage.walk``; and a failure's likely upstream cause. Used by the API (the graph,
an incident's blast radius) and the worker (a page's blast radius, a stale dataset's failed
upstream)."""

from __future__ import annotations

from lineage_faust.domain.datasets import INPUT
from lineage_faust.domain.lineage import (
    Cause,
    Direction,
    Graph,
    Neighbours,
    Node,
    dataset_node,
    job_node,
    nearest_failed,
    walk,
)
from lineage_faust.store.interfaces import LineageReads


def neighbours_in(store: LineageReads) -> Neighbours:
    async def neighbours(nodes: list[Node]) -> dict[Node, list[tuple[Node, str]]]:
        jobs = [(n.namespace, n.name) for n in nodes if n.is_job]
        datasets = [(n.namespace, n.name) for n in nodes if not n.is_job]
        of_jobs, of_datasets = await store.links_of(jobs, datasets)
        found: dict[Node, list[tuple[Node, str]]] = {}
        for key, links in of_jobs.items():
            found[job_node(*key)] = [
                (dataset_node(namespace, name), "in" if direction == INPUT else "out")
                for namespace, name, direction in links
            ]
        for key, links in of_datasets.items():
            found[dataset_node(*key)] = [
                (job_node(namespace, name), "out" if direction == INPUT else "in")
                for namespace, name, direction in links
            ]
        return found

    return neighbours


async def graph_around(
    store: LineageReads, start: Node, direction: Direction, depth: int, limit: int
) -> Graph:
    return await walk(start, neighbours_in(store), direction, depth, limit)


CAUSE_DEPTH = 10  # how far upstream a likely cause is looked for
CAUSE_NODES = 200


async def likely_cause(store: LineageReads, node: Node) -> Cause | None:
    """The nearest job upstream of ``node`` (a failing job, a stale dataset) whose latest run
    failed, if any."""
    upstream = await graph_around(store, node, Direction.UPSTREAM, CAUSE_DEPTH, CAUSE_NODES)
    jobs = [n for n in upstream.nodes if n.is_job and n != node]
    if not jobs:
        return None
    runs = await store.latest_runs([(n.namespace, n.name) for n in jobs])
    latest = {
        job: (run.run_id, run.state, run.ended)
        for job in jobs
        if (run := runs.get((job.namespace, job.name))) is not None
    }
    return nearest_failed(upstream, latest)
