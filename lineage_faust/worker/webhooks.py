"""What a page looks like at a webhook, and how one request to it ends.

A JSON POST per paged alert and per resolved incident: the alert itself with its ``status``
(``json``: ``triggered`` or ``resolved``), a Slack incoming-webhook message (``slack``), or a
PagerDuty Events API v2 event (``pagerduty``: ``trigger``, then ``resolve`` with the same
``dedup_key``, the incident's id). Each request carries ``X-Lineage-Alert-Id`` (the
deterministic alert id) so a receiver can drop the rare duplicate a crash between its answer
and our offset commit can cause. Queues, retries and concurrency are ``deliveries.py``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from lineage_faust.settings import Webhook

# how a request ended (else: why it may go better later); also the outcomes counted
DELIVERED = "delivered"
REFUSED = "refused"  # for good: retrying cannot help


def is_resolution(alert: Mapping[str, Any]) -> bool:
    return alert["kind"] == "resolved"


def subject(alert: Mapping[str, Any]) -> str:
    if alert.get("datasetName"):
        return f"{alert['datasetNamespace']}/{alert['datasetName']}"
    return f"{alert['namespace']}/{alert['job']}"


def slack_payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack-compatible message (incoming webhooks: ``text`` plus mrkdwn blocks)."""
    if is_resolution(alert):
        title = f":white_check_mark: resolved: {subject(alert)}"
        lines = [f"*{title}*", alert["detail"]]
        if alert.get("incidentUrl"):
            lines.append(f"<{alert['incidentUrl']}|the incident>")
        return _slack(title, lines)
    icon = {"critical": ":red_circle:", "warning": ":warning:"}.get(alert["severity"], ":bell:")
    title = f"{icon} {alert['kind'].replace('_', ' ')}: {subject(alert)}"
    if alert.get("datasetName"):
        lines = [f"*{title}*", alert["detail"]]
    else:
        lines = [f"*{title}*", f"run `{alert['runId']}` is {alert['state']}. {alert['detail']}"]
    if alert.get("errorMessage"):
        lines.append(f"> {alert['errorMessage'][:500]}")
    if alert.get("stackTrace"):
        lines.append(f"```{alert['stackTrace'][:1500]}```")
    if radius := alert.get("blastRadius"):
        lines.append(blast_line(radius))
    links = [f"<{alert['runUrl']}|open the run>"] if alert.get("runUrl") else []
    if radius and alert.get("lineageUrl"):
        links.append(f"<{alert['lineageUrl']}|the blast radius>")
    if alert.get("incidentUrl"):
        links.append(f"<{alert['incidentUrl']}|the incident> (what follows joins it, unpaged)")
    lines.append(" · ".join(links))
    return _slack(title, lines)


def _slack(title: str, lines: list[str]) -> dict[str, Any]:
    text = "\n".join(lines)
    return {
        "text": title,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


def blast_line(radius: Mapping[str, Any]) -> str:
    """``downstream: 3 datasets, 2 jobs (shop.orders, ...); likely cause upstream: ...``."""
    named = [*radius.get("firstDatasets", []), *radius.get("firstJobs", [])][:5]
    more = "+" if radius.get("truncated") else ""
    line = f"downstream: {radius['datasets']}{more} datasets, {radius['jobs']}{more} jobs"
    line = f"{line} ({', '.join(named)})" if named else line
    if cause := radius.get("likelyCause"):
        line += (
            f"; likely cause upstream: {cause['namespace']}/{cause['name']} "
            f"({cause['state']}, run {cause['runId']})"
        )
    return line


PAGERDUTY_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def pagerduty_payload(alert: Mapping[str, Any], routing_key: str) -> dict[str, Any]:
    """A PagerDuty Events API v2 event: the incident is the alert (``dedup_key``)."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "dedup_key": alert["incidentId"],
        "event_action": "resolve" if is_resolution(alert) else "trigger",
    }
    if is_resolution(alert):
        return event
    details = {
        key: alert.get(key)
        for key in (
            "kind",
            "state",
            "detail",
            "runId",
            "rootRunId",
            "tryNumber",
            "errorMessage",
            "stackTrace",
            "startedAt",
            "endedAt",
            "datasetNamespace",
            "datasetName",
            "blastRadius",
        )
        if alert.get(key) is not None
    }
    if not alert.get("datasetName"):
        details["failedTasks"] = [{"job": subject(alert), "runId": alert["runId"]}]
    if radius := alert.get("blastRadius"):
        details["downstream"] = blast_line(radius)  # what a responder reads first
    event["payload"] = {
        "summary": f"{alert['kind'].replace('_', ' ')}: {subject(alert)}: {alert['detail']}"[:1024],
        "source": subject(alert),
        "severity": PAGERDUTY_SEVERITY.get(alert["severity"], "error"),
        "timestamp": alert["raisedAt"],
        "component": alert.get("datasetName") or alert["job"],
        "group": alert.get("datasetNamespace") or alert["namespace"],
        "class": alert["kind"],
        "custom_details": details,
    }
    links = [
        ("runUrl", "the run"),
        ("incidentUrl", "the incident on the board"),
        ("lineageUrl", "its blast radius on the lineage graph"),
    ]
    event["links"] = [{"href": alert[k], "text": t} for k, t in links if alert.get(k)]
    event["client"] = "lineage-faust"
    if alert.get("incidentUrl"):
        event["client_url"] = alert["incidentUrl"]
    return event


def request(alert: Mapping[str, Any], webhook: Webhook) -> tuple[Any, dict[str, str]]:
    """The JSON body and headers of a page (or a resolution) for ``webhook``."""
    if webhook.format == "slack":
        body: Any = slack_payload(alert)
    elif webhook.format == "pagerduty":
        assert webhook.routing_key is not None
        body = pagerduty_payload(alert, webhook.routing_key)
    else:
        body = {**alert, "status": "resolved" if is_resolution(alert) else "triggered"}
    return body, {"X-Lineage-Alert-Id": alert["alertId"]}


def is_permanent(status: int) -> bool:
    """A 4xx other than timeout/rate limit will not get better by retrying."""
    return 400 <= status < 500 and status not in (408, 409, 425, 429)


async def post(client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]) -> str:
    """One request: ``DELIVERED``, ``REFUSED``, or why it may go better later."""
    try:
        response = await client.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    if response.is_success:
        return DELIVERED
    if is_permanent(response.status_code):
        return REFUSED
    return f"HTTP {response.status_code}"
