"""The lineage graph: jobs and datasets joined by the runs' inputs and outputs, walked from
one node up, down or both ways, bounded in depth and in nodes. Pure: the neighbours of a
level come from a function the caller gives (the store's dataset tables), asked once per level.

Edges point the way data flows: an input dataset -> the job reading it -> its output
dataset. Node ids are Marquez's: ``dataset:<namespace>:<name>``, ``job:<namespace>:<name>``
(the name is after the last ``:``: namespaces such as ``postgres://db:5432`` hold colons).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import NamedTuple

from lineage_faust.domain.times import iso_ms

MAX_DEPTH = 10
MAX_NODES = 1000  # a graph is cut there (``truncated``)


class Direction(StrEnum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"


class Node(NamedTuple):  # a tuple: hashed and ordered in C (a walk sorts thousands)
    kind: str  # "DATASET" or "JOB"
    namespace: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.kind.lower()}:{self.namespace}:{self.name}"

    @property
    def is_job(self) -> bool:
        return self.kind == "JOB"


def job_node(namespace: str, name: str) -> Node:
    return Node("JOB", namespace, name)


def dataset_node(namespace: str, name: str) -> Node:
    return Node("DATASET", namespace, name)


def parse_node_id(text: str) -> Node:
    """``dataset:<namespace>:<name>`` or ``job:<namespace>:<name>``; ValueError otherwise."""
    kind, _, rest = text.partition(":")
    namespace, _, name = rest.rpartition(":")
    if kind not in ("dataset", "job") or not namespace or not name:
        raise ValueError(
            f"nodeId {text!r}: expected dataset:<namespace>:<name>, job:<namespace>:<name> "
            "or run:<runId>"
        )
    return Node(kind.upper(), namespace, name)


# (neighbour, "in": it flows into the node / "out": the node flows into it)
Neighbours = Callable[[list[Node]], Awaitable[Mapping[Node, Iterable[tuple[Node, str]]]]]


@dataclass
class Graph:
    start: Node
    depth_of: dict[Node, int] = field(default_factory=dict)  # every node, and its distance
    edges: set[tuple[Node, Node]] = field(default_factory=set)  # (origin, destination)
    truncated: bool = False
    _into: dict[Node, set[Node]] = field(default_factory=dict, repr=False)
    _out_of: dict[Node, set[Node]] = field(default_factory=dict, repr=False)

    def add_edge(self, origin: Node, destination: Node) -> None:
        self.edges.add((origin, destination))
        self._out_of.setdefault(origin, set()).add(destination)
        self._into.setdefault(destination, set()).add(origin)

    def in_edges(self, node: Node) -> list[tuple[Node, Node]]:
        return [(origin, node) for origin in sorted(self._into.get(node, ()))]

    def out_edges(self, node: Node) -> list[tuple[Node, Node]]:
        return [(node, destination) for destination in sorted(self._out_of.get(node, ()))]

    @cached_property
    def nodes(self) -> list[Node]:
        """Nearest first (read once the walk is done)."""
        return sorted(self.depth_of, key=lambda n: (self.depth_of[n], n))


async def walk(
    start: Node,
    neighbours: Neighbours,
    direction: Direction = Direction.BOTH,
    depth: int = 5,
    limit: int = MAX_NODES,
) -> Graph:
    """Breadth first from ``start``, ``depth`` levels at most, ``limit`` nodes at most (then
    ``truncated``): downstream follows the data, upstream goes against it, both does both
    at every step (the connected graph around the node)."""
    graph = Graph(start, {start: 0})
    frontier = [start]
    for level in range(1, min(depth, MAX_DEPTH) + 1):
        if not frontier:
            break
        found = await neighbours(frontier)
        following: list[Node] = []
        for node in frontier:
            for other, way in sorted(found.get(node, ())):
                if (direction is Direction.DOWNSTREAM and way != "out") or (
                    direction is Direction.UPSTREAM and way != "in"
                ):
                    continue
                if other not in graph.depth_of:
                    if len(graph.depth_of) >= limit:
                        graph.truncated = True
                        continue
                    graph.depth_of[other] = level
                    following.append(other)
                graph.add_edge(*((other, node) if way == "in" else (node, other)))
        frontier = following
    return graph


def downstream_of(graph: Graph, starts: Iterable[Node]) -> tuple[list[Node], list[Node]]:
    """(datasets, jobs) of a downstream graph, the starting nodes left out, nearest first."""
    skip = set(starts)
    reached = [n for n in graph.nodes if n not in skip]
    return [n for n in reached if not n.is_job], [n for n in reached if n.is_job]


FAILED = ("FAIL", "ABORT")


@dataclass(frozen=True, slots=True)
class Cause:
    """The likely upstream cause of a failure: the nearest job upstream of it whose latest
    run failed (it did not write what the failing job read)."""

    job: Node
    run_id: str
    state: str
    ended: datetime | None
    distance: int

    def to_dict(self) -> dict:
        return {
            "namespace": self.job.namespace,
            "name": self.job.name,
            "runId": self.run_id,
            "state": self.state,
            "endedAt": iso_ms(self.ended) if self.ended else None,
            "distance": self.distance,
        }


def nearest_failed(
    upstream: Graph, latest: Mapping[Node, tuple[str, str, datetime | None]]
) -> Cause | None:
    """The nearest failed job of an upstream graph (its start left out), the earliest failure
    among the nearest; ``latest`` is each job's latest run: (runId, state, ended)."""
    failed = [
        (upstream.depth_of[job], run[2] or datetime.max.replace(tzinfo=UTC), job)
        for job, run in latest.items()
        if job != upstream.start and job in upstream.depth_of and run[1] in FAILED
    ]
    if not failed:
        return None
    distance, _, job = min(failed)
    run_id, state, ended = latest[job]
    return Cause(job, run_id, state, ended, distance)


NAMED = 5  # names a page carries of what it reaches


def radius_summary(graph: Graph, starts: Iterable[Node], cause: Cause | None = None) -> dict:
    """What a page says of its blast radius: how many datasets and jobs downstream, the
    nearest few by name, whether the walk was cut, and the likely upstream cause."""
    datasets, jobs = downstream_of(graph, starts)
    return {
        "datasets": len(datasets),
        "jobs": len(jobs),
        "firstDatasets": [f"{n.namespace}/{n.name}" for n in datasets[:NAMED]],
        "firstJobs": [f"{n.namespace}/{n.name}" for n in jobs[:NAMED]],
        "truncated": graph.truncated,
        "likelyCause": cause.to_dict() if cause else None,
    }
