"""The SQLite store's tables, indexes and migrations (``SCHEMA_VERSION``)."""

from __future__ import annotations

SCHEMA_VERSION = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Atlas's events_by_run columns, and eventSort orders rows the way Cassandra orders timeuuids.
CREATE TABLE IF NOT EXISTS events_by_run (
    id INTEGER PRIMARY KEY,
    runId TEXT NOT NULL,
    eventSort BLOB NOT NULL,
    eventId TEXT NOT NULL,
    source TEXT NOT NULL,
    jobName TEXT NOT NULL,
    eventTime INTEGER NOT NULL,          -- microseconds since 1970, UTC
    event TEXT NOT NULL,                 -- the original JSON, verbatim (see pack_text)
    status TEXT,
    expiresAt INTEGER                    -- from LINEAGE_RETENTION, NULL = kept
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_run_pk ON events_by_run (runId, eventSort);

CREATE TABLE IF NOT EXISTS run_status (
    runId TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    namespace TEXT NOT NULL,
    jobName TEXT NOT NULL,
    parentRunId TEXT,
    rootRunId TEXT,
    firstEventTime INTEGER,
    lastEventTime INTEGER,
    startTime INTEGER,
    endTime INTEGER,
    durationMs INTEGER,
    eventCount INTEGER NOT NULL,
    lastEventType TEXT,
    errorMessage TEXT,
    nominalStartTime TEXT,
    processingType TEXT,
    updatedAt INTEGER NOT NULL,
    runTime INTEGER NOT NULL,            -- base.run_time: job history order
    stateTime INTEGER NOT NULL,          -- base.state_time: "failed in the last hour" order
    expiresAt INTEGER,
    tryNumber INTEGER,
    maxTries INTEGER
);
-- In listing order (time DESC, runId ASC), so a page is an index range scan with no sort.
DROP INDEX IF EXISTS run_status_by_state_time;
DROP INDEX IF EXISTS run_status_by_job;
DROP INDEX IF EXISTS run_status_by_run_time;
CREATE INDEX IF NOT EXISTS run_status_by_state_listing
    ON run_status (state, stateTime DESC, runId ASC);
CREATE INDEX IF NOT EXISTS run_status_by_job_listing
    ON run_status (namespace, jobName, runTime DESC, runId ASC);
CREATE INDEX IF NOT EXISTS run_status_by_run_time_listing ON run_status (runTime DESC, runId ASC);
DROP INDEX IF EXISTS run_status_by_parent;
DROP INDEX IF EXISTS run_status_by_parent_run;
-- a run's children by start (then runId)
CREATE INDEX IF NOT EXISTS run_status_children ON run_status (parentRunId, runTime, runId);

CREATE TABLE IF NOT EXISTS non_run_events (
    id INTEGER PRIMARY KEY,
    eventId TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    eventTime INTEGER NOT NULL,
    event TEXT NOT NULL,
    expiresAt INTEGER
);
CREATE INDEX IF NOT EXISTS non_run_events_by_name ON non_run_events (namespace, name, eventTime);

CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    field TEXT,
    receivedAt INTEGER NOT NULL,
    key BLOB,
    value BLOB,
    expiresAt INTEGER,
    valueBytes INTEGER,
    valueSha256 TEXT,
    UNIQUE (topic, partition, "offset")
);

CREATE TABLE IF NOT EXISTS alerts (
    alertId TEXT PRIMARY KEY,
    raisedAt INTEGER NOT NULL,           -- microseconds since 1970, UTC
    severity TEXT NOT NULL,
    alert TEXT NOT NULL,                 -- the alert as JSON (the shape every channel carries)
    published INTEGER NOT NULL DEFAULT 0,
    expiresAt INTEGER,
    incidentId TEXT
);
CREATE INDEX IF NOT EXISTS alerts_listing ON alerts (raisedAt DESC, alertId ASC);
CREATE INDEX IF NOT EXISTS alerts_by_incident ON alerts (incidentId, raisedAt);

-- which alert paged for each incident: the first to claim it
CREATE TABLE IF NOT EXISTS incidents (
    incidentId TEXT PRIMARY KEY,
    alertId TEXT NOT NULL,
    expiresAt INTEGER
);

-- incidents' lifecycles (domain.incidents), each written over the version it was read at
CREATE TABLE IF NOT EXISTS incident_book (
    incidentId TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    openedAt INTEGER NOT NULL,           -- microseconds since 1970, UTC
    incident TEXT NOT NULL,              -- the incident as JSON
    expiresAt INTEGER
);
CREATE INDEX IF NOT EXISTS incident_book_listing ON incident_book (openedAt DESC, incidentId);

-- what failed (job:ns/name, dataset:ns/name) -> the incident last saved with it
CREATE TABLE IF NOT EXISTS incident_subjects (
    subject TEXT PRIMARY KEY,
    incidentId TEXT NOT NULL,
    expiresAt INTEGER
);

-- datasets that outlived their freshness expectation (open lapses)
CREATE TABLE IF NOT EXISTS stale_datasets (
    dsNamespace TEXT NOT NULL,
    dsName TEXT NOT NULL,
    lapse TEXT NOT NULL,                 -- the lapse as JSON (domain.freshness.Lapse)
    PRIMARY KEY (dsNamespace, dsName)
);

CREATE TABLE IF NOT EXISTS dataset_io (
    dsNamespace TEXT NOT NULL,
    dsName TEXT NOT NULL,
    direction TEXT NOT NULL,             -- input / output
    runId TEXT NOT NULL,
    jobNamespace TEXT NOT NULL,
    jobName TEXT NOT NULL,
    eventTime INTEGER NOT NULL,          -- the run's latest event naming the dataset (us)
    rowCount INTEGER,
    sizeBytes INTEGER,
    expiresAt INTEGER,
    PRIMARY KEY (dsNamespace, dsName, direction, runId)
);
CREATE INDEX IF NOT EXISTS dataset_io_listing
    ON dataset_io (dsNamespace, dsName, eventTime DESC, runId ASC, direction ASC);
CREATE INDEX IF NOT EXISTS dataset_io_by_run ON dataset_io (runId);

CREATE TABLE IF NOT EXISTS dataset_jobs (
    dsNamespace TEXT NOT NULL,
    dsName TEXT NOT NULL,
    direction TEXT NOT NULL,
    jobNamespace TEXT NOT NULL,
    jobName TEXT NOT NULL,
    lastSeen INTEGER NOT NULL,
    expiresAt INTEGER,
    PRIMARY KEY (dsNamespace, dsName, direction, jobNamespace, jobName)
);
CREATE INDEX IF NOT EXISTS dataset_jobs_by_job ON dataset_jobs (jobNamespace, jobName);
"""

# Version 1 files (before retention and run listing) gain the new columns in place.
_MIGRATE_FROM_1 = """
DROP INDEX IF EXISTS run_status_by_state;
ALTER TABLE events_by_run ADD COLUMN expiresAt INTEGER;
ALTER TABLE non_run_events ADD COLUMN expiresAt INTEGER;
ALTER TABLE dead_letters ADD COLUMN expiresAt INTEGER;
ALTER TABLE run_status ADD COLUMN expiresAt INTEGER;
ALTER TABLE run_status ADD COLUMN runTime INTEGER NOT NULL DEFAULT 0;
ALTER TABLE run_status ADD COLUMN stateTime INTEGER NOT NULL DEFAULT 0;
UPDATE run_status SET runTime = COALESCE(startTime, firstEventTime, updatedAt);
UPDATE run_status SET stateTime = CASE WHEN state IN ('COMPLETE', 'FAIL', 'ABORT')
    THEN COALESCE(endTime, lastEventTime, runTime) ELSE runTime END
"""
# Versions 1-4 keep a dead letter's whole value; version 5 its first 64 KiB, size and hash.
_MIGRATE_TO_5 = """
ALTER TABLE dead_letters ADD COLUMN valueBytes INTEGER;
ALTER TABLE dead_letters ADD COLUMN valueSha256 TEXT
"""
# Version 6: tries on run statuses, incidents on alerts (new tables come from _SCHEMA).
_MIGRATE_TO_6 = """
ALTER TABLE run_status ADD COLUMN tryNumber INTEGER;
ALTER TABLE run_status ADD COLUMN maxTries INTEGER;
ALTER TABLE alerts ADD COLUMN incidentId TEXT;
UPDATE alerts SET incidentId = alertId
"""
_DATA_TABLES = (
    "events_by_run",
    "run_status",
    "non_run_events",
    "dead_letters",
    "alerts",
    "dataset_io",
    "dataset_jobs",
    "incidents",
    "incident_book",
    "incident_subjects",
)


def _statements(script: str) -> list[str]:
    return [part for part in script.split(";") if part.strip()]
