"""Alert webhooks: a JSON POST per paged alert, retried with backoff until the receiver takes it.

Two ways, one sender. The worker that raised a page tries each webhook once at once
(``attempt``: no broker hop between the failure and the page); what that does not deliver is
published marked undelivered and the notify agent, over the alerts topic, retries it until
the receiver takes it (``deliver``), so a slow or failing receiver delays only other webhook
deliveries, never the event stream. Each request carries ``X-Lineage-Alert-Id`` (the
deterministic alert id) so a receiver can drop the rare duplicate a crash between its answer
and our offset commit can cause.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import httpx

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 60.0
REMEMBERED = 10_000  # delivered (alert, url) pairs kept to skip a redelivered alert
ATTEMPT_TIMEOUT_S = 2.0  # the raising worker's one try; past it, the notify agent's retries


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


def is_permanent(status: int) -> bool:
    """A 4xx other than timeout/rate limit will not get better by retrying."""
    return 400 <= status < 500 and status not in (408, 409, 425, 429)


class WebhookSender:
    def __init__(
        self, urls: tuple[str, ...], fmt: str, *, timeout_s: float = 10.0, metrics: Any = None
    ) -> None:
        self.urls = urls
        self.fmt = fmt
        self.metrics = metrics
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._delivered: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def close(self) -> None:
        await self._client.aclose()

    async def deliver(self, alert: Mapping[str, Any]) -> None:
        """Deliver one alert to every webhook (concurrently); returns once all took it."""
        if not alert.get("paged"):
            return
        await asyncio.gather(*(self._deliver_one(alert, i, url) for i, url in enumerate(self.urls)))

    async def attempt(self, alert: Mapping[str, Any]) -> bool:
        """One try at each webhook not yet delivered to, for at most ATTEMPT_TIMEOUT_S: True
        once every one took the alert (an unpaged alert needs none)."""
        if not alert.get("paged"):
            return True
        tries = (self._try_once(alert, url) for url in self.urls)
        try:
            return all(await asyncio.wait_for(asyncio.gather(*tries), ATTEMPT_TIMEOUT_S))
        except TimeoutError:
            return False

    async def _try_once(self, alert: Mapping[str, Any], url: str) -> bool:
        key = (alert["alertId"], url)
        if key in self._delivered:
            return True
        if await self._post(url, *self._request(alert)) != "ok":
            return False
        self._remember(key)
        return True

    def _request(self, alert: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
        body = slack_payload(alert) if self.fmt == "slack" else dict(alert)
        return body, {"X-Lineage-Alert-Id": alert["alertId"]}

    def _remember(self, key: tuple[str, str]) -> None:
        self._delivered[key] = None
        if len(self._delivered) > REMEMBERED:
            self._delivered.popitem(last=False)

    async def _deliver_one(self, alert: Mapping[str, Any], index: int, url: str) -> None:
        key = (alert["alertId"], url)
        if key in self._delivered:
            return
        body, headers = self._request(alert)
        delay = FIRST_BACKOFF_S
        attempt = 0
        while True:
            attempt += 1
            outcome = await self._post(url, body, headers)
            if outcome == "ok":
                break
            if outcome == "permanent" or attempt >= 1000:
                # the URL may carry a secret: log its position, never the URL
                log.error("webhook %d refused alert %s for good", index + 1, alert["alertId"])
                self._count("refused")
                break
            log.warning(
                "webhook %d: alert %s not delivered (%s), retry in %.1fs",
                index + 1,
                alert["alertId"],
                outcome,
                delay,
            )
            self._count("retried")
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, MAX_BACKOFF_S)
        self._remember(key)

    async def _post(self, url: str, body: Any, headers: dict[str, str]) -> str:
        try:
            response = await self._client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if response.is_success:
            self._count("delivered")
            return "ok"
        if is_permanent(response.status_code):
            return "permanent"
        return f"HTTP {response.status_code}"

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.webhook_deliveries.labels(outcome).inc()
