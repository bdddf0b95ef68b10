"""Freshness expectations and their alerts (pure), the one time format, and their settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lineage_faust.domain.freshness import (
    Lapse,
    LastWrite,
    expectation_for,
    fresh_alert,
    is_stale,
    lapse_from_dict,
    lapse_to_dict,
    parse_expectations,
    stale_alert,
)
from lineage_faust.domain.times import iso_ms, iso_text
from lineage_faust.settings import ConfigError, parse_settings

AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
WRITE = LastWrite("postgres://db:5432", "shop.public.orders", AT, "run-1", "etl", "load_orders")


def test_the_exact_entry_wins_over_globs_and_the_longest_glob_over_shorter() -> None:
    found = parse_expectations(
        {
            "postgres://db:5432/*": {"maxAgeSeconds": 86400},
            "postgres://db:5432/shop.public.*": {"maxAgeSeconds": 3600},
            "postgres://db:5432/shop.public.orders": {"maxAgeSeconds": 600},
        }
    )
    assert expectation_for(WRITE.key, found).max_age_s == 600
    assert expectation_for("postgres://db:5432/shop.public.items", found).max_age_s == 3600
    assert expectation_for("postgres://db:5432/crm.users", found).max_age_s == 86400
    assert expectation_for("s3://bucket/x", found) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"no-slash": {"maxAgeSeconds": 1}}, "namespace/name"),
        ({"a/b": {"maxAge": 1}}, "maxAgeSeconds"),
        ({"a/b": {"maxAgeSeconds": 0}}, "positive"),
        ({"a/b": {"maxAgeSeconds": True}}, "positive"),
        ({"a/b": 5}, "maxAgeSeconds"),
    ],
)
def test_bad_expectations_are_refused_naming_the_entry(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_expectations(raw)


def test_a_lapse_is_one_stale_alert_and_one_fresh_alert_in_one_incident() -> None:
    expectation = parse_expectations({WRITE.key: {"maxAgeSeconds": 3600}})[0]
    assert not is_stale(WRITE, expectation, AT + timedelta(seconds=3600))
    assert is_stale(WRITE, expectation, AT + timedelta(seconds=3601))
    first = stale_alert(WRITE, expectation, AT + timedelta(hours=2))
    later = stale_alert(WRITE, expectation, AT + timedelta(hours=5))
    assert first.alert_id == later.alert_id  # the same lapse, whenever it is swept
    assert first.paged and first.severity == "warning" and first.kind == "stale"
    lapse = Lapse(WRITE, 3600, AT + timedelta(hours=2))
    new = LastWrite(WRITE.namespace, WRITE.name, AT + timedelta(hours=6), "run-2", "etl", "x")
    fresh = fresh_alert(lapse, new, AT + timedelta(hours=6))
    assert fresh.incident_id == first.incident_id == first.alert_id
    assert fresh.run_id == "run-2" and fresh.kind == "fresh"
    assert lapse_from_dict(lapse_to_dict(lapse)) == lapse
    data = first.to_dict("http://api")
    assert data["datasetName"] == "shop.public.orders" and data["incidentId"] == first.alert_id


def test_every_time_is_utc_milliseconds_with_a_z() -> None:
    assert iso_ms(datetime(2026, 11, 1, 9, 0, 0, 123456, tzinfo=UTC)) == "2026-11-01T09:00:00.123Z"
    assert iso_text("2026-11-01T10:00:00+01:00") == "2026-11-01T09:00:00.000Z"
    assert iso_text("2026-11-01T09:00:00Z") == "2026-11-01T09:00:00.000Z"
    assert iso_text("2026-11-01T09:00:00") == "2026-11-01T09:00:00"  # no zone: as written
    assert iso_text("tomorrow") == "tomorrow"


def test_expectations_and_grouping_come_from_the_environment(tmp_path) -> None:
    path = tmp_path / "expectations.json"
    path.write_text('{"pg://db/shop.*": {"maxAgeSeconds": 60}}')
    s = parse_settings({"LINEAGE_DATASET_EXPECTATIONS_FILE": str(path)})
    assert [e.pattern for e in s.dataset_expectations] == ["pg://db/shop.*"]
    assert s.alert_rules.grouping == "incident"
    for env, message in (
        ({"LINEAGE_DATASET_EXPECTATIONS": "[1]"}, "JSON object"),
        ({"LINEAGE_DATASET_EXPECTATIONS": "{"}, "LINEAGE_DATASET_EXPECTATIONS"),
        ({"LINEAGE_DATASET_EXPECTATIONS_FILE": str(tmp_path / "nope")}, "cannot read"),
        ({"LINEAGE_ALERT_GROUPING": "tree"}, "incident, none"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_settings(env)
