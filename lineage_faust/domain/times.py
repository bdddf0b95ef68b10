"""Times as every output shows them: UTC, millisecond precision, a trailing Z (the format of
Atlas's API, kept for every time the API, alerts and the board carry). Pure."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(value: datetime | None) -> str | None:
    """``2026-11-21T10:04:12.500Z`` (naive values are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_text(text: str | None) -> str | None:
    """A producer's time text (``nominalStartTime``) in the same format; text that is not an
    ISO 8601 time with an offset is returned as the producer wrote it."""
    if not text:
        return text
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return text
    if value.tzinfo is None:
        return text  # no offset: which zone is unknown, so it is not converted
    return iso_ms(value)
