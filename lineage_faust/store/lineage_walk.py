"""The lineage graph read from any store's dataset tables (``Queries.job_datasets``,
``dataset_jobs``, kept as events arrive): the neighbours of a level of nodes, read together,
for ``domain.lineage.walk``. Used by the API (the graph, an incident's blast radius) and the
worker (a page's blast radius, a stale dataset's failed upstream)."""

from __future__ import annotations

import asyncio

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
from lineage_faust.store.interfaces import Queries


def neighbours_in(store: Queries) -> Neighbours:
    async def neighbours(nodes: list[Node]) -> dict[Node, list[tuple[Node, str]]]:
        async def of(node: Node) -> tuple[Node, list[tuple[Node, str]]]:
            if node.is_job:
                links = await store.job_datasets(node.namespace, node.name)
                return node, [
                    (dataset_node(x.namespace, x.name), "in" if x.direction == INPUT else "out")
                    for x in links
                ]
            links = await store.dataset_jobs(node.namespace, node.name)
            return node, [
                (job_node(x.namespace, x.name), "out" if x.direction == INPUT else "in")
                for x in links
            ]

        return dict(await asyncio.gather(*(of(n) for n in nodes)))

    return neighbours


async def graph_around(
    store: Queries, start: Node, direction: Direction, depth: int, limit: int
) -> Graph:
    return await walk(start, neighbours_in(store), direction, depth, limit)
