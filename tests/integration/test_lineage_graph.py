"""The lineage graph through a real worker, store and API over HTTP: a dbt-shaped project of
28 models over 4 sources, one staging model failing. The graph the API serves is compared
with one derived here from the events' inputs and outputs; the failing model's incident
lists exactly its transitive downstream models and their outputs."""

from __future__ import annotations

import json
import random
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from openlineage.client.event_v2 import InputDataset, OutputDataset, RunState

from api.schemas import LineageGraph
from lineage_faust.samples import DBT_SAMPLES, load_lines
from tests.support.browser import ARTIFACTS, board_page, needs_chromium
from tests.support.helpers import SAMPLES, Proc, Stack, wait_until
from tests.support.olclient import new_run_id, run_event

pytestmark = pytest.mark.integration

DB, DBT = "postgres://warehouse:5432", "dbt://warehouse"
FAILING = "stg_model_2"


def project() -> dict[str, tuple[list[str], str]]:
    """model -> (the tables it reads, the table it writes): sources -> staging ->
    intermediate -> marts, each layer reading one to three tables of the layers before."""
    rng = random.Random(7)
    tables = [f"raw.source_{i}" for i in range(4)]
    models: dict[str, tuple[list[str], str]] = {}
    for layer, count in (("stg", 8), ("int", 10), ("mart", 10)):
        made = []
        for i in range(count):
            name = f"{layer}_model_{i}"
            reads = rng.sample(tables, k=min(len(tables), rng.randint(1, 3)))
            if layer == "stg":
                reads = [tables[i % 4]]  # staging reads one source each
            models[name] = (sorted(reads), f"analytics.{name}")
            made.append(f"analytics.{name}")
        tables = tables + made
    return models


def events(models: dict[str, tuple[list[str], str]]) -> list[bytes]:
    at = datetime.now(UTC) - timedelta(minutes=10)
    lines = []
    for i, (model, (reads, writes)) in enumerate(models.items()):
        run_id, start = new_run_id(), at + timedelta(seconds=i)
        inputs = [InputDataset(namespace=DB, name=t) for t in reads]
        outputs = [OutputDataset(namespace=DB, name=writes)]
        end = RunState.FAIL if model == FAILING else RunState.COMPLETE
        for state, when in ((RunState.START, start), (end, start + timedelta(seconds=1))):
            lines.append(
                run_event(
                    state,
                    run_id,
                    model,
                    namespace=DBT,
                    at=when,
                    inputs=inputs,
                    outputs=outputs,
                    error="relation does not exist" if state == RunState.FAIL else None,
                )
            )
    return lines


def expected_edges(models: dict[str, tuple[list[str], str]]) -> set[tuple[str, str]]:
    edges = set()
    for model, (reads, writes) in models.items():
        job = f"job:{DBT}:{model}"
        edges |= {(f"dataset:{DB}:{t}", job) for t in reads}
        edges.add((job, f"dataset:{DB}:{writes}"))
    return edges


def edges_in(lines: list[bytes]) -> set[tuple[str, str]]:
    """The lineage the events declare, read from their JSON alone: input -> job -> output."""
    edges = set()
    for line in lines:
        event = json.loads(line)
        job = f"job:{event['job']['namespace']}:{event['job']['name']}"
        edges |= {(f"dataset:{d['namespace']}:{d['name']}", job) for d in event.get("inputs", [])}
        edges |= {(job, f"dataset:{d['namespace']}:{d['name']}") for d in event.get("outputs", [])}
    return edges


def eccentricity(edges: set[tuple[str, str]], start: str) -> int:
    """How many levels a walk both ways from ``start`` needs to reach every node."""
    both = {(a, b) for a, b in edges} | {(b, a) for a, b in edges}
    everything = {x for edge in edges for x in edge}
    level = 0
    while within(both, start, level, upstream=False) != everything:
        level += 1
    return level


def reachable(edges: set[tuple[str, str]], start: str) -> set[str]:
    out: dict[str, set[str]] = {}
    for a, b in edges:
        out.setdefault(a, set()).add(b)
    seen, queue = {start}, deque([start])
    while queue:
        for nxt in out.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen - {start}


def test_the_graph_matches_the_events_and_the_blast_radius_is_downstream(
    stack: Stack, tmp_path: Path
) -> None:
    models = project()
    lines = events(models)
    path = tmp_path / "dbt.jsonl"
    path.write_bytes(b"\n".join(lines))
    worker, api = started(stack)
    assert stack.send(path).returncode == 0
    assert stack.send(SAMPLES).returncode == 0  # the recorded Airflow DAGs too
    [incident] = wait_until(
        lambda: (
            [
                i
                for i in httpx.get(f"{api}/api/v1/incidents", timeout=10).json()["incidents"]
                if i["namespace"] == DBT
            ]
            or None
        ),
        60,
        "the failing model's incident",
    )

    def graph(node: str, **params: str | int) -> dict:
        answer = httpx.get(f"{api}/api/v1/lineage", params={"nodeId": node, **params}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    edges = expected_edges(models)
    assert edges_in(lines) == edges  # the project as designed is what its events declare
    # the whole project is one connected graph: from a source, both ways, deep enough
    whole = graph(f"dataset:{DB}:raw.source_0", depth=10, direction="both", limit=1000)
    LineageGraph.model_validate(whole)  # the shape the OpenAPI document promises
    served = {(e["origin"], e["destination"]) for n in whole["graph"] for e in n["outEdges"]}
    assert served == edges and not whole["truncated"]
    assert {n["id"] for n in whole["graph"]} == {x for edge in edges for x in edge}
    for node in whole["graph"]:  # in and out edges agree
        for e in node["inEdges"]:
            assert e["destination"] == node["id"] and (e["origin"], node["id"]) in edges

    # live states on the nodes: the failing model, its output at risk
    nodes = {n["id"]: n for n in whole["graph"]}
    failing = nodes[f"job:{DBT}:{FAILING}"]["data"]
    assert failing["latestRun"]["state"] == "FAIL"
    assert failing["openIncident"] == incident["incidentId"]
    assert nodes[f"job:{DBT}:stg_model_0"]["data"]["latestRun"]["state"] == "COMPLETE"
    output = nodes[f"dataset:{DB}:analytics.{FAILING}"]["data"]
    assert output["atRisk"] and output["lastGoodWrite"] is None
    source = nodes[f"dataset:{DB}:raw.source_0"]["data"]
    assert not source["atRisk"] and not source["stale"]

    # downstream of the failing model only, one level: its output
    down = graph(f"job:{DBT}:{FAILING}", depth=1, direction="downstream")
    assert {n["id"] for n in down["graph"]} == {
        f"job:{DBT}:{FAILING}",
        f"dataset:{DB}:analytics.{FAILING}",
    }
    # a run's node is its job's
    run_id = failing["latestRun"]["runId"]
    assert graph(f"run:{run_id}", depth=1)["graph"][0]["id"] == f"job:{DBT}:{FAILING}"
    truncated = graph(f"dataset:{DB}:raw.source_0", depth=10, limit=5)
    assert truncated["truncated"] and len(truncated["graph"]) == 5

    # the blast radius: exactly the transitive downstream of the failing model
    below = reachable(edges, f"job:{DBT}:{FAILING}")
    detail = httpx.get(f"{api}/api/v1/incidents/{incident['incidentId']}", timeout=30).json()
    blast = detail["blastRadius"]
    assert {f"job:{DBT}:{j['name']}" for j in blast["jobs"]} == {
        n for n in below if n.startswith("job:")
    }
    assert {f"dataset:{DB}:{d['name']}" for d in blast["datasets"]} == {
        n for n in below if n.startswith("dataset:")
    }
    assert blast["jobs"] and not blast["truncated"]
    assert blast["datasets"][0]["name"] == f"analytics.{FAILING}"  # nearest first
    assert blast["datasets"][0]["distance"] == 1

    # the page itself carried it: counts and the nearest names
    alerts = httpx.get(f"{api}/api/v1/alerts", params={"limit": 100}).json()["alerts"]
    [page] = [a for a in alerts if a["paged"] and a["namespace"] == DBT]
    carried = page["blastRadius"]
    assert carried["jobs"] == len(blast["jobs"]) and carried["datasets"] == len(blast["datasets"])
    assert carried["firstDatasets"][0] == f"{DB}/analytics.{FAILING}" and not carried["truncated"]

    # the recorded Airflow DAGs declare no datasets: no lineage for any of their jobs
    airflow = [line for line in SAMPLES.read_bytes().splitlines() if line.strip()]
    assert edges_in(airflow) == set()
    wait_until(
        lambda: len(httpx.get(f"{api}/api/v1/runs", params={"limit": 1000}).json()["runs"]) >= 30,
        60,
        "the Airflow runs stored",
    )
    for job in {(e["job"]["namespace"], e["job"]["name"]) for e in map(json.loads, airflow)}:
        answer = httpx.get(f"{api}/api/v1/lineage", params={"nodeId": f"job:{job[0]}:{job[1]}"})
        assert answer.status_code == 404 and "no lineage known" in answer.json()["error"]
    for bad, status in (("table:x:y", 400), (f"job:{DBT}:nothing", 404), ("run:nope", 404)):
        assert httpx.get(f"{api}/api/v1/lineage", params={"nodeId": bad}).status_code == status
    worker.stop()


def test_a_stale_mart_downstream_of_a_failure_joins_its_incident(
    stack: Stack, tmp_path: Path
) -> None:
    """raw.a -> stg_a -> mart_a and raw.b -> stg_b -> mart_b, every mart expected every 4 s.
    stg_a fails: one page. Both marts go stale: mart_a's staleness is stg_a's failure's
    consequence and joins its incident unpaged; mart_b's has no failed upstream: it pages."""
    from tests.support.receiver import Receiver

    now = datetime.now(UTC)
    flows = {"stg_a": ("raw.a", "stg.a"), "mart_a": ("stg.a", "mart.a")}
    flows |= {"stg_b": ("raw.b", "stg.b"), "mart_b": ("stg.b", "mart.b")}
    lines = []
    for i, (model, (reads, writes)) in enumerate(flows.items()):
        run_id, at = new_run_id(), now + timedelta(milliseconds=100 * i)
        io = {
            "inputs": [InputDataset(namespace=DB, name=reads)],
            "outputs": [OutputDataset(namespace=DB, name=writes)],
        }
        lines.append(run_event(RunState.START, run_id, model, namespace=DBT, at=at, **io))
        lines.append(run_event(RunState.COMPLETE, run_id, model, namespace=DBT, at=at, **io))
    failing = new_run_id()
    io = {
        "inputs": [InputDataset(namespace=DB, name="raw.a")],
        "outputs": [OutputDataset(namespace=DB, name="stg.a")],
    }
    later = now + timedelta(seconds=1)
    lines.append(run_event(RunState.START, failing, "stg_a", namespace=DBT, at=later, **io))
    lines.append(
        run_event(RunState.FAIL, failing, "stg_a", namespace=DBT, at=later, error="boom", **io)
    )
    path = tmp_path / "project.jsonl"
    path.write_bytes(b"\n".join(lines))
    with Receiver() as receiver:
        worker, api = started(
            stack,
            LINEAGE_WEBHOOKS=receiver.url,
            LINEAGE_DATASET_EXPECTATIONS='{"' + DB + '/mart.*": {"maxAgeSeconds": 4}}',
            LINEAGE_SWEEP_INTERVAL="0.5",
        )
        assert stack.send(path).returncode == 0

        def alerts() -> list[dict]:
            return httpx.get(f"{api}/api/v1/alerts", params={"limit": 100}).json()["alerts"]

        stale = wait_until(
            lambda: (
                found if len(found := [a for a in alerts() if a["kind"] == "stale"]) == 2 else None
            ),
            30,
            "both marts stale",
        )
        wait_until(lambda: len(receiver.accepted) == 2, 30, "two pages")
        time.sleep(2)  # several more sweeps: nothing more pages
        worker.stop()
    [failed] = [a for a in alerts() if a["kind"] == "failed"]
    by_mart = {a["datasetName"]: a for a in stale}
    assert by_mart["mart.a"]["incidentId"] == failed["incidentId"]
    assert not by_mart["mart.a"]["paged"] and by_mart["mart.a"]["pagedBy"] == failed["alertId"]
    assert by_mart["mart.b"]["paged"] and by_mart["mart.b"]["incidentId"] != failed["incidentId"]
    assert sorted(a["kind"] for a in receiver.accepted) == ["failed", "stale"]
    assert [a["datasetName"] for a in receiver.accepted if a["kind"] == "stale"] == ["mart.b"]
    incident = httpx.get(f"{api}/api/v1/incidents/{failed['incidentId']}", timeout=30).json()
    assert f"dataset:{DB}/mart.a" in incident["lifecycle"]["failing"]
    radius = {d["name"]: d for d in incident["blastRadius"]["datasets"]}
    assert radius["mart.a"]["stale"] and radius["stg.a"]["distance"] == 1
    assert "mart.b" not in radius


def test_a_failure_downstream_of_a_failed_job_names_it_as_the_likely_cause(
    stack: Stack, tmp_path: Path
) -> None:
    """raw.c -> stg_c -> stg.c -> int_c -> int.c: stg_c fails, then int_c fails on what it
    read. int_c's page and incident name stg_c (two edges up) as the likely cause; stg_c's
    own, whose upstream is healthy, name none."""
    from tests.support.receiver import Receiver

    now = datetime.now(UTC)
    lines = []
    for i, (model, reads, writes) in enumerate(
        (("stg_c", "raw.c", "stg.c"), ("int_c", "stg.c", "int.c"))
    ):
        run_id, at = new_run_id(), now + timedelta(seconds=i)
        io = {
            "inputs": [InputDataset(namespace=DB, name=reads)],
            "outputs": [OutputDataset(namespace=DB, name=writes)],
        }
        lines.append(run_event(RunState.START, run_id, model, namespace=DBT, at=at, **io))
        lines.append(
            run_event(RunState.FAIL, run_id, model, namespace=DBT, at=at, error="boom", **io)
        )
    (tmp_path / "first.jsonl").write_bytes(lines[0] + b"\n" + lines[1])
    (tmp_path / "then.jsonl").write_bytes(lines[2] + b"\n" + lines[3])
    with Receiver() as receiver:
        worker, api = started(stack, LINEAGE_WEBHOOKS=receiver.url)
        assert stack.send(tmp_path / "first.jsonl").returncode == 0
        wait_until(lambda: len(receiver.accepted) == 1, 30, "stg_c's page")
        assert stack.send(tmp_path / "then.jsonl").returncode == 0
        wait_until(lambda: len(receiver.accepted) == 2, 30, "int_c's page")
        worker.stop()
    pages = {page["job"]: page for page in receiver.accepted}
    assert pages["stg_c"]["blastRadius"]["likelyCause"] is None
    assert pages["stg_c"]["blastRadius"]["firstDatasets"] == [f"{DB}/stg.c"]  # int_c unseen yet
    cause = pages["int_c"]["blastRadius"]["likelyCause"]
    assert (cause["namespace"], cause["name"], cause["state"]) == (DBT, "stg_c", "FAIL")
    assert cause["distance"] == 2 and cause["runId"] == pages["stg_c"]["runId"]
    detail = httpx.get(f"{api}/api/v1/incidents/{pages['int_c']['incidentId']}").json()
    assert detail["blastRadius"]["likelyCause"]["name"] == "stg_c"
    assert detail["blastRadius"]["datasets"] == [
        {"namespace": DB, "name": "int.c", "distance": 1, "stale": False}
    ]
    first = httpx.get(f"{api}/api/v1/incidents/{pages['stg_c']['incidentId']}").json()
    assert first["blastRadius"]["likelyCause"] is None


# a layered graph of 150 nodes drawn by the board's own drawLineage (jobs and datasets
# alternating over 12 ranks, each node reading two of the rank before), one job failed
BIG_GRAPH = """() => {
  const nodes = [], byRank = [];
  for (let r = 0; r < 12; r++) {
    byRank.push([]);
    for (let i = 0; i < (r < 6 ? 12 : 13); i++) {
      const job = r % 2 === 1, id = `${job ? "job" : "dataset"}:ns:n${r}_${i}`;
      const state = r === 3 && i === 0 ? "FAIL" : "COMPLETE", at = new Date().toISOString();
      const data = {namespace: "ns", name: `n${r}_${i}`, stale: false, atRisk: false,
                    lastGoodWrite: null, latestRun: job ? {state, time: at} : null};
      const node = {id, type: job ? "JOB" : "DATASET", data, inEdges: [], outEdges: []};
      if (r > 0) [i, i + 1].forEach((k) => {
        const from = byRank[r - 1][k % byRank[r - 1].length];
        const edge = {origin: from.id, destination: id};
        from.outEdges.push(edge); node.inEdges.push(edge);
      });
      byRank[r].push(node); nodes.push(node);
    }
  }
  const failed = new Set(["job:ns:n3_0"]);
  document.querySelector("#view h2").textContent = "A synthetic layered graph of 150 nodes";
  document.getElementById("lineage-summary").textContent = "150 nodes, 1 failed";
  document.getElementById("lineage-box").innerHTML =
    drawLineage(nodes, nodes[0].id, failed, downstreamOf(nodes, failed));
}"""


def started(stack: Stack, **env: str) -> tuple[Proc, str]:
    """A worker (ready) and the API, with ``env`` added: the worker and the API's address."""
    stack.extra_env.update(env)
    worker = stack.spawn("worker")
    stack.start_api()
    wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
    return worker, stack.api_url


def incident_of(stack: Stack, path: Path, alerts: int = 1) -> tuple[str, dict]:
    """``path`` folded by a worker (stopped again) until its one incident holds ``alerts``
    alerts: the API's address and the incident."""
    worker, api = started(stack)
    assert stack.send(path).returncode == 0
    [incident] = wait_until(
        lambda: httpx.get(f"{api}/api/v1/incidents", timeout=10).json()["incidents"] or None,
        60,
        "the incident",
    )
    wait_until(
        lambda: (
            len(httpx.get(f"{api}/api/v1/incidents/{incident['incidentId']}").json()["alerts"])
            >= alerts
        ),
        30,
        f"{alerts} alerts in the incident",
    )
    worker.stop()
    return api, incident


def within(edges: set[tuple[str, str]], start: str, depth: int, upstream: bool) -> set[str]:
    """The nodes at most ``depth`` edges from ``start`` against (or along) the data's flow."""
    step: dict[str, set[str]] = {}
    for a, b in edges:
        step.setdefault(b if upstream else a, set()).add(a if upstream else b)
    seen, frontier = {start}, {start}
    for _ in range(depth):
        frontier = {n for f in frontier for n in step.get(f, ())} - seen
        seen |= frontier
    return seen


def boxes_overlap(page) -> list[tuple[str, str]]:  # a Playwright page
    boxes = page.evaluate(
        """[...document.querySelectorAll('#lineage-graph g.node')].map((g) => {
             const r = g.getBBox(), m = g.transform.baseVal.consolidate().matrix;
             return [g.dataset.node, m.e, m.f, r.width, r.height]; })"""
    )
    return [
        (a[0], b[0])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[1] < b[1] + b[3] and b[1] < a[1] + a[3] and a[2] < b[2] + b[4] and b[2] < a[2] + a[4]
    ]


@needs_chromium
def test_the_board_draws_the_lineage_with_the_failure_and_its_blast_radius(
    stack: Stack, tmp_path: Path
) -> None:
    from urllib.parse import quote

    models = project()
    path = tmp_path / "dbt.jsonl"
    path.write_bytes(b"\n".join(events(models)))
    api, incident = incident_of(stack, path)
    edges = expected_edges(models)
    failing = f"job:{DBT}:{FAILING}"
    below = reachable(edges, failing)
    nodes = "#lineage-graph g.node"

    def drawn(selector: str = nodes) -> set[str]:
        return set(page.eval_on_selector_all(selector, "gs => gs.map((g) => g.dataset.node)"))

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with board_page(viewport={"width": 1600, "height": 1000}) as page:
        # the whole project around a source: 60 nodes, laid out without overlaps
        source = quote(f"dataset:{DB}:raw.source_0", safe="")
        page.goto(f"{api}/#lineage/{source}?direction=both&depth=10")
        page.wait_for_selector(f"{nodes}.FAIL", timeout=20_000)
        assert drawn() == {x for edge in edges for x in edge} and len(drawn()) == 60
        assert page.locator("#overview").is_hidden()
        assert drawn(f"{nodes}.FAIL") == {failing}
        assert drawn(f"{nodes}.blast") == below  # exactly what the failure feeds
        assert page.locator("#lineage-graph path.edge").count() == len(edges)
        assert page.locator("#lineage-graph path.edge.blast").count() == sum(
            1 for a, b in edges if (a == failing or a in below) and b in below
        )  # the paths the failure spreads along
        assert boxes_overlap(page) == []
        assert "60 nodes" in page.locator("#lineage-summary").inner_text()
        whole = "#lineage-box { max-height: none; overflow: visible; }"  # the picture: all of it
        page.add_style_tag(content=whole)
        page.screenshot(path=str(ARTIFACTS / "board-lineage-dbt.png"), full_page=True)

        # a dataset's page, then its upstream on the graph
        mart = f"analytics.mart_model_{FAILING[-1]}"
        page.goto(f"{api}/#dataset/{quote(DB, safe='')}/{quote(mart, safe='')}")
        page.wait_for_selector("#dataset-summary", timeout=20_000)
        assert "mart_model" in page.locator("#dataset-summary").inner_text()
        page.click("#view h2 a.lineage-link:has-text('upstream')")
        page.wait_for_selector(f"{nodes}.start", timeout=20_000)
        assert drawn() == within(edges, f"dataset:{DB}:{mart}", 6, upstream=True)
        assert drawn(f"{nodes}.start") == {f"dataset:{DB}:{mart}"}
        page.add_style_tag(content=whole)
        page.screenshot(path=str(ARTIFACTS / "board-lineage-upstream.png"), full_page=True)

        # an incident's blast radius on the graph, from the incident's page
        page.goto(f"{api}/#incident/{incident['incidentId']}")
        page.click("#view a.lineage-link")
        page.wait_for_selector(f"{nodes}.blast", timeout=20_000)
        assert drawn(f"{nodes}.start") == {failing}
        assert drawn(f"{nodes}.blast") == below
        assert incident["incidentId"] in page.locator("#view h2").inner_text()
        page.add_style_tag(content=whole)
        page.screenshot(path=str(ARTIFACTS / "board-lineage-incident.png"), full_page=True)

        # a click on a node moves the view there; back returns
        output = f"dataset:{DB}:analytics.{FAILING}"
        page.click(f"{nodes}[data-node='{output}']")
        page.wait_for_function(
            f"document.querySelector(\"#lineage-graph g.node.start\")?.dataset.node === '{output}'",
            timeout=20_000,
        )
        page.go_back()
        start = "document.querySelector('#lineage-graph g.node.start')?.dataset.node"
        page.wait_for_function(f"{start} === {failing!r}", timeout=20_000)
        # past the size of a dbt project: 150 nodes, 12 ranks, still no overlaps, nothing shrunk
        page.evaluate(BIG_GRAPH)
        assert page.locator(nodes).count() == 150 and boxes_overlap(page) == []
        width = page.eval_on_selector("#lineage-graph g.node rect", "r => r.getBBox().width")
        assert width == 210  # node boxes keep their size: the box scrolls instead
        page.add_style_tag(content=whole)
        page.screenshot(path=str(ARTIFACTS / "board-lineage-150.png"), full_page=True)
    for shot in ("dbt", "upstream", "incident", "150"):
        assert (ARTIFACTS / f"board-lineage-{shot}.png").stat().st_size > 20_000, shot


def test_the_recorded_dbt_project_its_failure_and_what_it_put_at_risk(
    stack: Stack, tmp_path: Path
) -> None:
    """A real dbt-ol recording (samples.DBT_SAMPLES): a green run, then stg_payments fails and
    dbt skips the ten models below it. The served graph is exactly the events' inputs and
    outputs; one incident, one page; its blast radius is exactly what stg_payments feeds,
    the skipped models among it; the page carries it."""
    from tests.support.receiver import Receiver

    lines = load_lines(DBT_SAMPLES)
    edges = edges_in(lines)
    failing = "job:dbt-shop:model.shop.stg_payments"
    below = reachable(edges, failing)
    skipped = {
        f"job:dbt-shop:{e['job']['name']}"
        for e in map(json.loads, lines)
        if e["eventType"] == "ABORT"
    }
    assert len(skipped) == 10 and skipped < below  # as recorded: dbt skipped what it feeds
    with Receiver() as receiver:
        worker, api = started(stack, LINEAGE_WEBHOOKS=receiver.url)
        assert stack.send(DBT_SAMPLES).returncode == 0
        wait_until(
            lambda: (
                len(httpx.get(f"{api}/api/v1/runs", params={"limit": 1000}).json()["runs"])
                >= len({json.loads(line)["run"]["runId"] for line in lines})
            ),
            60,
            "every run stored",
        )
        [page] = wait_until(lambda: receiver.accepted or None, 30, "the page")
        time.sleep(1)  # what else could page has been folded by now
        worker.stop()
    assert len(receiver.accepted) == 1  # one failure, one incident, one page
    # the whole project around its most central node (each edge is found from a node fewer
    # than 10 levels away)
    everything = {x for edge in edges for x in edge}
    center = min(everything, key=lambda n: eccentricity(edges, n))
    assert eccentricity(edges, center) < 10
    whole = httpx.get(
        f"{api}/api/v1/lineage",
        params={"nodeId": center, "depth": 10, "direction": "both", "limit": 1000},
        timeout=30,
    ).json()
    served = {(e["origin"], e["destination"]) for n in whole["graph"] for e in n["outEdges"]}
    assert served == edges and not whole["truncated"]
    assert len(whole["graph"]) == 62  # 31 jobs (7 seeds, 24 models), 31 tables
    nodes = {n["id"]: n["data"] for n in whole["graph"]}
    assert nodes[failing]["latestRun"]["state"] == "FAIL"
    assert {n for n, d in nodes.items() if (d.get("latestRun") or {}).get("state") == "ABORT"} == (
        skipped
    )
    payments = "dataset:duckdb:///srv/shop/warehouse.duckdb:warehouse.analytics.stg_payments"
    assert nodes[payments]["atRisk"] and nodes[payments]["lastGoodWrite"] is not None

    detail = httpx.get(f"{api}/api/v1/incidents/{page['incidentId']}", timeout=30).json()
    radius = detail["blastRadius"]
    listed = {f"dataset:{d['namespace']}:{d['name']}" for d in radius["datasets"]}
    listed |= {f"job:{j['namespace']}:{j['name']}" for j in radius["jobs"]}
    assert listed == below and not radius["truncated"]
    assert radius["likelyCause"] is None  # the cause is in the incident itself
    # The page carries the blast radius of the job that paged: which of the tree's failures
    # pages depends on which run-updates partition is folded first (stg_payments' SQL
    # statement, the model, a skipped model, or the dbt invocation). A statement's run names
    # its model as its parent: the model's blast radius.
    paged, carried = f"job:dbt-shop:{page['job']}", page["blastRadius"]
    if paged not in {x for edge in edges for x in edge}:
        parent = (
            next(
                e["run"]["facets"]["parent"]["job"]["name"]
                for e in map(json.loads, lines)
                if e["run"]["runId"] == page["runId"] and "parent" in e["run"].get("facets", {})
            )
            if page["job"] != "dbt-run-shop"
            else None
        )
        paged = f"job:dbt-shop:{parent}" if parent else paged
    expected = reachable(edges, paged)
    assert carried["jobs"] == sum(1 for n in expected if n.startswith("job:")), page["job"]
    assert carried["datasets"] == sum(1 for n in expected if n.startswith("dataset:"))


@needs_chromium
def test_the_board_draws_the_recorded_dbt_failure_and_its_blast_radius(
    stack: Stack,
) -> None:
    from urllib.parse import quote

    edges = edges_in(load_lines(DBT_SAMPLES))
    below = reachable(edges, "job:dbt-shop:model.shop.stg_payments")
    api, incident = incident_of(stack, DBT_SAMPLES, alerts=12)  # the skipped models' joined
    target = quote(f"incident:{incident['incidentId']}", safe="")
    with board_page(viewport={"width": 1600, "height": 1000}) as page:
        page.goto(f"{api}/#lineage/{target}")
        page.wait_for_selector("#lineage-graph g.node.blast", timeout=20_000)
        blast = page.eval_on_selector_all(
            "#lineage-graph g.node.blast", "gs => gs.map((g) => g.dataset.node)"
        )
        assert set(blast) == below
        failed = page.eval_on_selector_all(
            "#lineage-graph g.node.FAIL", "gs => gs.map((g) => g.dataset.node)"
        )
        assert failed == ["job:dbt-shop:model.shop.stg_payments"]
        assert page.locator("#lineage-graph g.node.ABORT").count() == 10  # dbt skipped them
        assert boxes_overlap(page) == []
        page.add_style_tag(content="#lineage-box { max-height: none; overflow: visible; }")
        shot = ARTIFACTS / "board-lineage-dbt-recorded.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
