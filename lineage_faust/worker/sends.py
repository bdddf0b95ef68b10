"""Sending a batch's messages to a topic so that a retry re-sends only what is missing.

A batch's sends are retried as a whole while the broker is unavailable (``retry_forever``).
Re-sending messages the broker had already acknowledged would put copies on the topic: one
dead letter per rejected message became 14, then 60, in a run where one send kept failing.
:class:`SendEachOnce` remembers each message's outcome across attempts.

A message the broker can never take (too large, refused for good: ``failures``) is handed to
``on_refused``, which returns a replacement (a dead letter cut to fit) or None to give it up;
it never fails the batch, so the pipeline moves on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import faust
from faust.types import RecordMetadata

from lineage_faust.failures import describe, is_record_refused

log = logging.getLogger(__name__)

Message = dict[str, Any]  # keyword arguments of faust.Topic.send: key, value, headers, partition
OnRefused = Callable[[Message, BaseException], Message | None]


def give_up(message: Message, error: BaseException) -> None:
    return None


class SendEachOnce:
    """Messages for one topic; :meth:`send` may be called again after it raised."""

    def __init__(
        self, topic: faust.TopicT, messages: list[Message], on_refused: OnRefused = give_up
    ) -> None:
        self.topic = topic
        self.messages = messages
        self.on_refused = on_refused
        self.sent: dict[int, RecordMetadata] = {}
        self.given_up: dict[int, str] = {}  # index -> why (content-free)

    @property
    def done(self) -> bool:
        return len(self.sent) + len(self.given_up) == len(self.messages)

    async def send(self) -> list[RecordMetadata]:
        """Send every message not yet acknowledged; raise the first transient failure
        (after recording every acknowledgement that did arrive)."""
        while not self.done:
            pending = [
                i
                for i in range(len(self.messages))
                if i not in self.sent and i not in self.given_up
            ]
            failure: BaseException | None = None
            started: list[tuple[int, asyncio.Future]] = []
            for i in pending:
                try:
                    started.append((i, await self.topic.send(force=True, **self.messages[i])))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not self._refused(i, exc):
                        failure = exc
                        break
            outcomes = await asyncio.gather(*(f for _, f in started), return_exceptions=True)
            for (i, _), outcome in zip(started, outcomes, strict=True):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                if isinstance(outcome, BaseException):
                    if not self._refused(i, outcome):
                        failure = failure or outcome
                else:
                    self.sent[i] = outcome
            if failure is not None:
                raise failure
        return [self.sent[i] for i in sorted(self.sent)]

    def _refused(self, index: int, error: BaseException) -> bool:
        """A message the broker can never take: replace it (tried again next round) or give
        it up. False: not such an error."""
        if not is_record_refused(error):
            return False
        replacement = self.on_refused(self.messages[index], error)
        if replacement is None:
            self.given_up[index] = describe(error)
            log.error(
                "%s refused a message for good (%s); it is not sent",
                self.topic.get_topic_name(),
                describe(error),
            )
        else:
            self.messages[index] = replacement
        return True
