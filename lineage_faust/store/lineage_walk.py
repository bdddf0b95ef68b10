"""The lineage graph read from any store's dataset tables (``job_datasets``, ``dataset_jobs``,
kept as events arrive): the neighbours of a level of nodes, in one ``LineageReads.links_of``,
for ``domain.lineage.walk``. Used by the API (the graph, an incident's blast radius) and the
worker (a page's blast radius, a stale dataset's failed upstream)."""

from __future__ import annotations

from lineage_faust.domain.datasets import INPUT
from lineage_faust.domain.lineage import (
    Direction,
    Graph,
    Neighbours,
    Node,
    dataset_node,
    job_node,
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
