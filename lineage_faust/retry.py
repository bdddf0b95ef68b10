"""Retry with capped exponential backoff: the worker waits for the store or broker to come
back instead of dropping a batch or committing past it. Failures that waiting cannot mend
(``failures.is_permanent``) are raised at once, for the caller to account for and move on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from lineage_faust.failures import describe, is_permanent

if TYPE_CHECKING:
    from lineage_faust.worker.accounting import Health

log = logging.getLogger(__name__)
T = TypeVar("T")


async def retry_forever(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    first_delay_s: float = 0.1,
    max_delay_s: float = 10.0,
    retry: type[Exception] | tuple[type[Exception], ...] = Exception,
    health: Health | None = None,
    permanent: Callable[[BaseException], bool] = is_permanent,
) -> T:
    """Await ``attempt()`` until it succeeds. Errors other than ``retry``, and permanent
    ones, are raised."""
    delay = first_delay_s
    failures = 0
    while True:
        try:
            result = await attempt()
        except asyncio.CancelledError:
            raise
        except retry as exc:
            if permanent(exc):
                if health is not None:
                    health.recovered(what)  # not waiting any more: the caller moves on
                raise
            failures += 1
            if health is not None:
                health.failed(what, exc)
            log.warning(
                "%s failed (%d in a row): %s; retrying in %.1fs",
                what,
                failures,
                describe(exc),
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
        else:
            if failures:
                log.info("%s succeeded after %d failures", what, failures)
                if health is not None:
                    health.recovered(what)
            return result
