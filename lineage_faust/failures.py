"""Which failures on the pipeline's path can get better by waiting, and which never will.

Transient (the broker or store is down, slow, electing a leader, rebalancing): wait and retry
with backoff, keeping the offsets (``retry.retry_forever``). Permanent (this record is too
large, this topic is invalid or not ours to write, the store refuses this value): retrying
can never succeed, so the pipeline must account for the message some other way and move on.

The lists are explicit rather than read from aiokafka's ``retriable`` flag, which is False for
plain timeouts and other errors that do get better (``KafkaTimeoutError``, ``KafkaError``).
"""

from __future__ import annotations

from aiokafka import errors as kafka

from lineage_faust.store.errors import StoreRefused

# A record that can never be written, whatever the broker's state.
RECORD_REFUSED = (
    kafka.MessageSizeTooLargeError,  # over the producer's max_request_size or the topic's limit
    kafka.RecordListTooLargeError,
    kafka.RecordTooLargeError,
    kafka.CorruptRecordException,  # also InvalidMessageError (same class in aiokafka)
    kafka.InvalidTimestampError,
    kafka.UnsupportedForMessageFormatError,
)

# A destination that refuses every record: a configuration problem an operator must fix.
DESTINATION_REFUSED = (
    kafka.InvalidTopicError,
    kafka.TopicAuthorizationFailedError,
    kafka.ClusterAuthorizationFailedError,
    kafka.PolicyViolationError,
    kafka.InvalidRequiredAcksError,
)


def root_cause(exc: BaseException) -> BaseException:
    """The error underneath wrappers (Faust raises ``ProducerSendError`` from aiokafka's)."""
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def is_record_refused(exc: BaseException) -> bool:
    """This one record (or value) can never be accepted: isolate it and move on."""
    return isinstance(root_cause(exc), (*RECORD_REFUSED, StoreRefused))


def is_permanent(exc: BaseException) -> bool:
    """Retrying the same call can never succeed."""
    return is_record_refused(exc) or isinstance(root_cause(exc), DESTINATION_REFUSED)


def describe(exc: BaseException) -> str:
    """A short, content-free description for logs and /health (the class name and the
    first line of the message, which for these errors names sizes and topics, not data)."""
    exc = root_cause(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
