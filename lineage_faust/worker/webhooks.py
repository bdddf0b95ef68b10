"""What a page looks like at a webhook, and how one request to it ends.

A JSON POST per paged alert: the alert itself (``json``) or a Slack incoming-webhook message
(``slack``). Each request carries ``X-Lineage-Alert-Id`` (the deterministic alert id) so a
receiver can drop the rare duplicate a crash between its answer and our offset commit can
cause. Queues, retries and concurrency are ``deliveries.py``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

# how a request ended (else: why it may go better later); also the outcomes counted
DELIVERED = "delivered"
REFUSED = "refused"  # for good: retrying cannot help


def slack_payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack-compatible message (incoming webhooks: ``text`` plus mrkdwn blocks)."""
    icon = {"critical": ":red_circle:", "warning": ":warning:"}.get(alert["severity"], ":bell:")
    title = f"{icon} {alert['kind'].replace('_', ' ')}: {alert['namespace']}/{alert['job']}"
    if alert.get("datasetName"):
        title = f"{icon} {alert['kind']}: {alert['datasetNamespace']}/{alert['datasetName']}"
        lines = [f"*{title}*", alert["detail"]]
    else:
        lines = [f"*{title}*", f"run `{alert['runId']}` is {alert['state']}. {alert['detail']}"]
    if alert.get("errorMessage"):
        lines.append(f"> {alert['errorMessage'][:500]}")
    if alert.get("stackTrace"):
        lines.append(f"```{alert['stackTrace'][:1500]}```")
    links = [f"<{alert['runUrl']}|open the run>"] if alert.get("runUrl") else []
    if alert.get("incidentUrl"):
        links.append(f"<{alert['incidentUrl']}|the incident> (what follows joins it, unpaged)")
    lines.append(" · ".join(links))
    text = "\n".join(lines)
    return {
        "text": title,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


def request(alert: Mapping[str, Any], fmt: str) -> tuple[Any, dict[str, str]]:
    """The JSON body and headers of a page in format ``fmt``."""
    body = slack_payload(alert) if fmt == "slack" else dict(alert)
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
