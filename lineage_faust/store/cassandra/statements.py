"""Every CQL statement the store prepares, by name."""

from __future__ import annotations

from lineage_faust.domain.records import STATUS_COLUMNS

_EVENT_COLUMNS = "eventId, runID, jobName, source, eventTime, status, event"
_NON_RUN_COLUMNS = "eventId, kind, namespace, name, source, eventTime, event"
_DATASET_IO_COLUMNS = (
    "dsNamespace, dsName, direction, runId, jobNamespace, jobName, eventTime, rowCount, sizeBytes"
)
_DEAD_LETTER_COLUMNS = (
    "sourceTopic, sourcePartition, sourceOffset, reason, detail, fieldPath, receivedAt, "
    "messageKey, messageValue, valueBytes, valueSha256"
)


def _statements(ks: str) -> dict[str, str]:
    status_marks = ", ".join("?" * len(STATUS_COLUMNS.split(", ")))
    return {
        "insert_event": (
            f"INSERT INTO {ks}.events_by_run ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ),
        "select_events": f"SELECT {_EVENT_COLUMNS} FROM {ks}.events_by_run WHERE runID = ?",
        "select_event": (
            f"SELECT {_EVENT_COLUMNS} FROM {ks}.events_by_run WHERE runID = ? AND eventId = ?"
        ),
        "select_event_ids": f"SELECT eventId FROM {ks}.events_by_run WHERE runID = ? LIMIT ?",
        "select_stored_event_pairs": (
            f"SELECT runID, eventId FROM {ks}.events_by_run WHERE runID IN ? AND eventId IN ?"
        ),
        "count_events": f"SELECT count(*) FROM {ks}.events_by_run WHERE runID = ?",
        "insert_status": f"INSERT INTO {ks}.run_status ({STATUS_COLUMNS}) VALUES ({status_marks})",
        "select_status": f"SELECT {STATUS_COLUMNS} FROM {ks}.run_status WHERE runId = ?",
        "select_statuses": f"SELECT {STATUS_COLUMNS} FROM {ks}.run_status WHERE runId IN ?",
        "insert_state_index": (
            f"INSERT INTO {ks}.runs_by_state (state, bucket, sortTime, runId) VALUES (?, ?, ?, ?)"
        ),
        "delete_state_index": (
            f"DELETE FROM {ks}.runs_by_state "
            "WHERE state = ? AND bucket = ? AND sortTime = ? AND runId = ?"
        ),
        "select_state_index": (
            f"SELECT sortTime, runId FROM {ks}.runs_by_state "
            "WHERE state = ? AND bucket = ? AND sortTime >= ? AND sortTime <= ?"
        ),
        "insert_job_index": (
            f"INSERT INTO {ks}.runs_by_job (namespace, jobName, bucket, sortTime, runId) "
            "VALUES (?, ?, ?, ?, ?)"
        ),
        "delete_job_index": (
            f"DELETE FROM {ks}.runs_by_job WHERE namespace = ? AND jobName = ? AND bucket = ? "
            "AND sortTime = ? AND runId = ?"
        ),
        "select_job_index": (
            f"SELECT sortTime, runId FROM {ks}.runs_by_job WHERE namespace = ? AND jobName = ? "
            "AND bucket = ? AND sortTime >= ? AND sortTime <= ?"
        ),
        "insert_parent_index": (
            f"INSERT INTO {ks}.runs_by_parent (parentRunId, runId) VALUES (?, ?)"
        ),
        "delete_parent_index": (
            f"DELETE FROM {ks}.runs_by_parent WHERE parentRunId = ? AND runId = ?"
        ),
        "select_parent_index": f"SELECT runId FROM {ks}.runs_by_parent WHERE parentRunId = ?",
        "insert_child_index": (
            f"INSERT INTO {ks}.children_by_start (parentRunId, sortTime, runId) VALUES (?, ?, ?)"
        ),
        "delete_child_index": (
            f"DELETE FROM {ks}.children_by_start "
            "WHERE parentRunId = ? AND sortTime = ? AND runId = ?"
        ),
        "select_child_index": (
            f"SELECT sortTime, runId FROM {ks}.children_by_start WHERE parentRunId = ?"
        ),
        "insert_bucket": f"INSERT INTO {ks}.buckets (scope, name, bucket) VALUES (?, ?, ?)",
        "select_buckets": (
            f"SELECT bucket FROM {ks}.buckets WHERE scope = ? AND name = ? "
            "AND bucket >= ? AND bucket <= ?"
        ),
        "insert_non_run": (
            f"INSERT INTO {ks}.non_run_events (namespace, name, bucket, eventId, kind, source, "
            "eventTime, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        "select_stored_non_run_ids": (
            f"SELECT eventId FROM {ks}.non_run_events "
            "WHERE namespace = ? AND name = ? AND bucket = ? AND eventId IN ?"
        ),
        "select_non_run": (
            f"SELECT {_NON_RUN_COLUMNS} FROM {ks}.non_run_events "
            "WHERE namespace = ? AND name = ? AND bucket = ? LIMIT ?"
        ),
        "insert_dead_letter": (
            f"INSERT INTO {ks}.dead_letters (bucket, {_DEAD_LETTER_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        "select_dead_letters": (
            f"SELECT {_DEAD_LETTER_COLUMNS} FROM {ks}.dead_letters WHERE bucket = ? LIMIT ?"
        ),
        "insert_alert": (
            f"INSERT INTO {ks}.alerts (alertId, raisedAt, severity, alert, published) "
            "VALUES (?, ?, ?, ?, false) IF NOT EXISTS"
        ),
        "select_alert": f"SELECT alert, published FROM {ks}.alerts WHERE alertId = ?",
        # a plain upsert, not a lightweight transaction: an alert is marked only after it was
        # recorded (and a Paxos round per alert was a good part of the node's work)
        "mark_alert_published": f"UPDATE {ks}.alerts SET published = true WHERE alertId = ?",
        "insert_alert_by_day": (
            f"INSERT INTO {ks}.alerts_by_day (bucket, raisedAt, alertId, severity, alert) "
            "VALUES (?, ?, ?, ?, ?)"
        ),
        "select_alerts_by_day": (
            f"SELECT raisedAt, alertId, severity, alert FROM {ks}.alerts_by_day "
            "WHERE bucket = ? AND raisedAt >= ?"
        ),
        "insert_alert_by_incident": (
            f"INSERT INTO {ks}.alerts_by_incident (incidentId, raisedAt, alertId, alert) "
            "VALUES (?, ?, ?, ?)"
        ),
        "select_alerts_by_incident": (
            f"SELECT alert FROM {ks}.alerts_by_incident WHERE incidentId = ? LIMIT ?"
        ),
        "claim_incident": (
            f"INSERT INTO {ks}.incidents (incidentId, alertId) VALUES (?, ?) IF NOT EXISTS"
        ),
        "insert_incident": (
            f"INSERT INTO {ks}.incident_book (incidentId, version, state, openedAt, incident) "
            "VALUES (?, ?, ?, ?, ?) IF NOT EXISTS"
        ),
        "update_incident": (
            f"UPDATE {ks}.incident_book SET version = ?, state = ?, incident = ? "
            "WHERE incidentId = ? IF version = ?"
        ),
        "select_incidents": (
            f"SELECT incident, version FROM {ks}.incident_book WHERE incidentId IN ?"
        ),
        "insert_incident_by_day": (
            f"INSERT INTO {ks}.incidents_by_day (bucket, openedAt, incidentId) VALUES (?, ?, ?)"
        ),
        "select_incidents_by_day": (
            f"SELECT openedAt, incidentId FROM {ks}.incidents_by_day "
            "WHERE bucket = ? AND openedAt >= ?"
        ),
        "insert_incident_subject": (
            f"INSERT INTO {ks}.incident_subjects (subject, incidentId) VALUES (?, ?)"
        ),
        "select_incident_subjects": (
            f"SELECT subject, incidentId FROM {ks}.incident_subjects WHERE subject IN ?"
        ),
        "insert_written_dataset": (
            f"INSERT INTO {ks}.written_datasets (shard, dsNamespace, dsName) VALUES (?, ?, ?)"
        ),
        "select_written_datasets": (
            f"SELECT dsNamespace, dsName FROM {ks}.written_datasets WHERE shard = ?"
        ),
        "insert_lapse": (
            f"INSERT INTO {ks}.stale_datasets (scope, dsNamespace, dsName, lapse) "
            "VALUES (?, ?, ?, ?)"
        ),
        "delete_lapse": (
            f"DELETE FROM {ks}.stale_datasets WHERE scope = ? AND dsNamespace = ? AND dsName = ?"
        ),
        "select_lapses": f"SELECT lapse FROM {ks}.stale_datasets WHERE scope = ?",
        "insert_dataset_run": (
            f"INSERT INTO {ks}.dataset_runs (dsNamespace, dsName, bucket, runId, direction, "
            "jobNamespace, jobName, eventTime, rowCount, sizeBytes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        "select_dataset_runs": (
            f"SELECT {_DATASET_IO_COLUMNS} FROM {ks}.dataset_runs "
            "WHERE dsNamespace = ? AND dsName = ? AND bucket = ?"
        ),
        "insert_dataset_job": (
            f"INSERT INTO {ks}.dataset_jobs (dsNamespace, dsName, direction, jobNamespace, "
            "jobName, lastSeen) VALUES (?, ?, ?, ?, ?, ?)"
        ),
        "select_dataset_jobs": (
            f"SELECT jobNamespace, jobName, direction, lastSeen FROM {ks}.dataset_jobs "
            "WHERE dsNamespace = ? AND dsName = ?"
        ),
        "insert_job_dataset": (
            f"INSERT INTO {ks}.job_datasets (jobNamespace, jobName, direction, dsNamespace, "
            "dsName, lastSeen) VALUES (?, ?, ?, ?, ?, ?)"
        ),
        "select_job_datasets": (
            f"SELECT dsNamespace, dsName, direction, lastSeen FROM {ks}.job_datasets "
            "WHERE jobNamespace = ? AND jobName = ?"
        ),
        "insert_dataset_of_run": (
            f"INSERT INTO {ks}.datasets_by_run (runId, direction, dsNamespace, dsName, "
            "jobNamespace, jobName, eventTime, rowCount, sizeBytes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        "select_datasets_of_run": (
            f"SELECT {_DATASET_IO_COLUMNS} FROM {ks}.datasets_by_run WHERE runId = ?"
        ),
        "select_meta": f"SELECT value FROM {ks}.schema_meta WHERE name = ?",
        "insert_meta": f"INSERT INTO {ks}.schema_meta (name, value) VALUES (?, ?)",
    }
