"""The lineage graph around a node, from the store's dataset tables (kept as events arrive:
``dataset_jobs``, ``job_datasets``), with what operators need on each node: a job's latest
run and whether it is failing in an open incident; a dataset's last good write, whether it is
stale (an open freshness lapse) or at risk (a writer in the graph failed after its last good
write). And the blast radius of an incident: what its failing jobs feed, transitively."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from lineage_faust.domain.incidents import Incident, job_subject
from lineage_faust.domain.lineage import (
    FAILED,
    Direction,
    Graph,
    Node,
    dataset_node,
    downstream_of,
    job_node,
)
from lineage_faust.domain.times import iso_ms
from lineage_faust.store import Store
from lineage_faust.store.incident_subjects import incidents_by_subject
from lineage_faust.store.lineage_walk import graph_around, likely_cause
from lineage_faust.store.queries import LatestRun

BLAST_DEPTH = 10
BLAST_NODES = 500


async def node_data(store: Store, graph: Graph) -> dict[Node, dict[str, Any]]:
    """Each node's live state (jobs: latest run, open incident; datasets: last good write,
    stale, at risk)."""
    jobs = [n for n in graph.nodes if n.is_job]
    datasets = [n for n in graph.nodes if not n.is_job]

    runs, writes, lapses, subjects = await asyncio.gather(
        store.latest_runs([(j.namespace, j.name) for j in jobs]),
        store.last_good_writes([(d.namespace, d.name) for d in datasets]),
        store.open_lapses(),
        incidents_by_subject(store, [job_subject(j.namespace, j.name) for j in jobs]),
    )
    stale = {(lapse.write.namespace, lapse.write.name) for lapse in lapses}
    data: dict[Node, dict[str, Any]] = {}
    latest_of = {job: runs.get((job.namespace, job.name)) for job in jobs}
    for job in jobs:
        run = latest_of[job]
        incident = subjects.get(job_subject(job.namespace, job.name))
        open_incident = incident.incident_id if incident is not None and incident.is_open else None
        data[job] = {
            "namespace": job.namespace,
            "name": job.name,
            "latestRun": None
            if run is None
            else {
                "runId": run.run_id,
                "state": run.state,
                "time": iso_ms(run.ended) if run.ended else None,
            },
            "openIncident": open_incident,
        }
    for dataset in datasets:
        write = writes.get((dataset.namespace, dataset.name))
        written = write.at if write is not None else None
        writers = [origin for origin, _ in graph.in_edges(dataset)]
        data[dataset] = {
            "namespace": dataset.namespace,
            "name": dataset.name,
            "lastGoodWrite": None
            if write is None
            else {
                "runId": write.run_id,
                "time": iso_ms(write.at),
                "job": f"{write.job_namespace}/{write.job}",
            },
            "stale": (dataset.namespace, dataset.name) in stale,
            "atRisk": any(failed_after(latest_of.get(w), written) for w in writers),
        }
    return data


def failed_after(run: LatestRun | None, written: datetime | None) -> bool:
    if run is None or run.state not in FAILED:
        return False
    return written is None or (run.ended is not None and run.ended > written)


def marquez_graph(graph: Graph, data: dict[Node, dict[str, Any]]) -> list[dict[str, Any]]:
    """Marquez's ``graph`` list: nodes with id, type, data, inEdges, outEdges."""

    ids = {node: node.id for node in graph.nodes}

    def edges(pairs: Iterable[tuple[Node, Node]]) -> list[dict[str, str]]:
        return [{"origin": ids[a], "destination": ids[b]} for a, b in pairs]

    return [
        {
            "id": ids[node],
            "type": node.kind,
            "data": data.get(node, {}),
            "inEdges": edges(graph.in_edges(node)),
            "outEdges": edges(graph.out_edges(node)),
        }
        for node in graph.nodes
    ]


async def blast_radius(store: Store, incident: Incident) -> dict[str, Any]:
    """Everything downstream of the incident's failing jobs (and stale datasets)."""
    starts = [_start_of(incident, subject) for subject in incident.pending or incident.subjects]
    graphs, causes = await asyncio.gather(
        asyncio.gather(
            *(
                graph_around(store, s, Direction.DOWNSTREAM, BLAST_DEPTH, BLAST_NODES)
                for s in starts
            )
        ),
        asyncio.gather(*(likely_cause(store, s) for s in starts)),
    )
    found_causes = [c for c in causes if c is not None and c.job not in starts]
    datasets: dict[Node, int] = {}
    jobs: dict[Node, int] = {}
    truncated = False
    for graph in graphs:
        truncated |= graph.truncated
        # a failing job downstream of another one is in its blast radius too (dbt's skipped
        # models, a DAG's downstream tasks): each walk leaves out only its own start
        found_datasets, found_jobs = downstream_of(graph, [graph.start])
        for node in found_datasets:
            datasets[node] = min(datasets.get(node, 99), graph.depth_of[node])
        for node in found_jobs:
            jobs[node] = min(jobs.get(node, 99), graph.depth_of[node])
    stale = {(lapse.write.namespace, lapse.write.name) for lapse in await store.open_lapses()}

    def listed(nodes: dict[Node, int]) -> list[dict[str, Any]]:
        return [
            {"namespace": n.namespace, "name": n.name, "distance": d}
            | ({} if n.is_job else {"stale": (n.namespace, n.name) in stale})
            for n, d in sorted(nodes.items(), key=lambda item: (item[1], item[0]))
        ]

    return {
        "datasets": listed(datasets),
        "jobs": listed(jobs),
        "staleDatasets": sum(1 for n in datasets if (n.namespace, n.name) in stale),
        "truncated": truncated,
        "likelyCause": min(found_causes, key=lambda c: c.distance).to_dict()
        if found_causes
        else None,
    }


def _start_of(incident: Incident, subject: str) -> Node:
    """The node a subject names. A dataset's incident is that dataset's (its name may hold
    slashes); a job subject is ``namespace/name``, the name after the last slash."""
    kind, _, ref = subject.partition(":")
    if kind == "dataset":
        return dataset_node(incident.namespace, incident.name)
    namespace, _, name = ref.rpartition("/")
    return job_node(namespace, name)
