"""Quieter first seconds on a new Kafka cluster.

While a new cluster creates ``__consumer_offsets``, the group coordinator is not available for
a few seconds and aiokafka says so at WARNING and ERROR ("Marking the coordinator dead",
"Group Coordinator Request failed: GroupCoordinatorNotAvailableError"), every time a worker
starts. That is normal then and alarming in a log. Until the worker has joined its group
once, those records are logged at INFO; afterwards they keep their level (then they mean
something).
"""

from __future__ import annotations

import logging

NOISE = ("Marking the coordinator dead", "Group Coordinator Request failed")
LOGGER = "aiokafka.consumer.group_coordinator"


class BeforeFirstJoin(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.joined = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.joined and record.levelno > logging.INFO and record.msg.startswith(NOISE):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_until_joined() -> BeforeFirstJoin:
    """Install the filter; set its ``joined`` once the worker has its first assignment."""
    quiet = BeforeFirstJoin()
    logging.getLogger(LOGGER).addFilter(quiet)
    return quiet
