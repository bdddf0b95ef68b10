"""The Cassandra data model: one table per query, every partition bounded.

``events_by_run`` is exactly the table Atlas's OpenLineage integration defines, so the two
systems read each other's rows. The other tables are ours, each designed for one query:

==================  ==============================  =========================================
table               partition key (clustering)      query, and why the partition is bounded
==================  ==============================  =========================================
events_by_run       runID (eventId DESC)            a run's events, newest first, paged.
                                                    One run's events: a handful to thousands.
run_status          runId                           a run's folded status. One row.
runs_by_state       (state, hour)                   "what failed in the last hour": runs that
                    (sortTime DESC, runId)          entered a state in that hour (and, as
                                                    state '*', every run by its start).
                                                    Bounded by one hour's runs.
runs_by_job         (namespace, jobName, month)     a job's run history, newest first.
                    (sortTime DESC, runId)          Bounded by one month of one job's runs.
runs_by_parent      parentRunId (runId)             a run's children, as written before
                                                    version 6 (read when children_by_start
                                                    has none).
children_by_start   parentRunId (sortTime, runId)   a run's children by start. Bounded by one
                                                    run's children.
buckets             (scope, name) (bucket DESC)     which hour/month/day partitions exist, so
                                                    a walk back in time skips empty ones. One
                                                    row per bucket; kept without TTL.
non_run_events      (namespace, name, month)        JobEvents/DatasetEvents of one job or
                    (eventId DESC)                  dataset, newest first. One month of one.
dead_letters        day (receivedAt DESC, source    the latest rejected messages. One day's.
                    topic/partition/offset)
alerts              alertId                         one alert: written once (IF NOT EXISTS),
                                                    then marked published (the outbox).
alerts_by_day       day (raisedAt DESC, alertId)    alerts newest first. One day's alerts.
alerts_by_incident  incidentId (raisedAt, alertId)  an incident's alerts. A handful.
incidents           incidentId                      which alert paged for it: claimed once
                                                    (IF NOT EXISTS).
incident_book       incidentId                      an incident's lifecycle, written only over
                                                    the version read (IF version = ?).
incidents_by_day    day (openedAt DESC, incidentId) incidents newest first. One day's.
incident_subjects   subject                         what failed -> its latest incident. One row.
dataset_runs        (dsNamespace, dsName, month)    runs that read or wrote a dataset (sorted
                    (runId, direction)              by time when read). One month of one.
dataset_jobs        (dsNamespace, dsName)           jobs seen reading/writing a dataset.
                    (direction, job)                Bounded by the jobs touching it.
job_datasets        (jobNamespace, jobName)         datasets a job read/wrote (impact).
                    (direction, dataset)            Bounded by the job's datasets.
datasets_by_run     runId (direction, dataset)      one run's datasets. A handful.
written_datasets    shard (dsNamespace, dsName)     every dataset written (the freshness
                                                    sweep), over 16 shards by name.
stale_datasets      scope (dsNamespace, dsName)     open freshness lapses. Bounded by the
                                                    datasets with an expectation.
schema_meta         name                            the schema version.
==================  ==============================  =========================================

Index tables (``runs_by_state``, ``runs_by_job``, ``children_by_start``) hold keys only: a
listing reads the statuses from ``run_status`` and drops index rows that no longer match it,
so an index row
left behind (a lost delete, a rebalance race) can never show a wrong state. That also makes a
short ``gc_grace_seconds`` safe for them (a resurrected index row is filtered the same way),
which keeps the tombstones of runs that moved on (RUNNING -> COMPLETE) from piling up.
"""

from __future__ import annotations

from lineage_faust.settings import CassandraOptions

# 2: runs_by_parent; 3: alerts, alerts_by_day; 4: dataset tables; 5: a dead letter's size and
# hash; 6: tries, children by start, incidents, freshness; 7: incidents' lifecycles (each
# created in place by init-store / CREATE_SCHEMA=1)
SCHEMA_VERSION = 7
# columns added to tables of earlier versions (ALTER TABLE ... ADD)
ADDED_COLUMNS = {
    "dead_letters": (("valueBytes", "int"), ("valueSha256", "text")),
    "run_status": (("tryNumber", "int"), ("maxTries", "int")),
}
WRITTEN_SHARDS = 16
INDEX_GC_GRACE_S = 3 * 3600

# Tables whose rows expire after LINEAGE_RETENTION (default_time_to_live); buckets and
# schema_meta never expire (a bucket row must outlive every row of its partition).
DATA_TABLES = (
    "events_by_run",
    "run_status",
    "runs_by_state",
    "runs_by_job",
    "runs_by_parent",
    "children_by_start",
    "non_run_events",
    "dead_letters",
    "alerts",
    "alerts_by_day",
    "alerts_by_incident",
    "incidents",
    "incident_book",
    "incidents_by_day",
    "incident_subjects",
    "dataset_runs",
    "dataset_jobs",
    "job_datasets",
    "datasets_by_run",
    "written_datasets",
)

_TABLES = {
    "events_by_run": """
        CREATE TABLE IF NOT EXISTS {ks}.events_by_run (
            eventId timeuuid, source text, jobName text, runID text,
            eventTime timestamp, event text, status text,
            PRIMARY KEY ((runID), eventId)
        ) WITH CLUSTERING ORDER BY (eventId DESC) AND {options}""",
    "run_status": """
        CREATE TABLE IF NOT EXISTS {ks}.run_status (
            runId text PRIMARY KEY, state text, namespace text, jobName text,
            parentRunId text, rootRunId text,
            firstEventTime timestamp, lastEventTime timestamp,
            startTime timestamp, endTime timestamp, durationMs bigint,
            eventCount int, lastEventType text, errorMessage text,
            nominalStartTime text, processingType text, updatedAt timestamp,
            tryNumber int, maxTries int
        ) WITH {options}""",
    "runs_by_state": """
        CREATE TABLE IF NOT EXISTS {ks}.runs_by_state (
            state text, bucket timestamp, sortTime timestamp, runId text,
            PRIMARY KEY ((state, bucket), sortTime, runId)
        ) WITH CLUSTERING ORDER BY (sortTime DESC, runId ASC)
          AND gc_grace_seconds = {gc_grace} AND {options}""",
    "runs_by_job": """
        CREATE TABLE IF NOT EXISTS {ks}.runs_by_job (
            namespace text, jobName text, bucket timestamp, sortTime timestamp, runId text,
            PRIMARY KEY ((namespace, jobName, bucket), sortTime, runId)
        ) WITH CLUSTERING ORDER BY (sortTime DESC, runId ASC)
          AND gc_grace_seconds = {gc_grace} AND {options}""",
    "runs_by_parent": """
        CREATE TABLE IF NOT EXISTS {ks}.runs_by_parent (
            parentRunId text, runId text,
            PRIMARY KEY ((parentRunId), runId)
        ) WITH gc_grace_seconds = {gc_grace} AND {options}""",
    "children_by_start": """
        CREATE TABLE IF NOT EXISTS {ks}.children_by_start (
            parentRunId text, sortTime timestamp, runId text,
            PRIMARY KEY ((parentRunId), sortTime, runId)
        ) WITH CLUSTERING ORDER BY (sortTime ASC, runId ASC)
          AND gc_grace_seconds = {gc_grace} AND {options}""",
    "buckets": """
        CREATE TABLE IF NOT EXISTS {ks}.buckets (
            scope text, name text, bucket timestamp,
            PRIMARY KEY ((scope, name), bucket)
        ) WITH CLUSTERING ORDER BY (bucket DESC) AND default_time_to_live = 0""",
    "non_run_events": """
        CREATE TABLE IF NOT EXISTS {ks}.non_run_events (
            namespace text, name text, bucket timestamp, eventId timeuuid,
            kind text, source text, eventTime timestamp, event text,
            PRIMARY KEY ((namespace, name, bucket), eventId)
        ) WITH CLUSTERING ORDER BY (eventId DESC) AND {options}""",
    "dead_letters": """
        CREATE TABLE IF NOT EXISTS {ks}.dead_letters (
            bucket timestamp, receivedAt timestamp,
            sourceTopic text, sourcePartition int, sourceOffset bigint,
            reason text, detail text, fieldPath text, messageKey blob, messageValue blob,
            valueBytes int, valueSha256 text,
            PRIMARY KEY ((bucket), receivedAt, sourceTopic, sourcePartition, sourceOffset)
        ) WITH CLUSTERING ORDER BY (receivedAt DESC, sourceTopic ASC, sourcePartition ASC,
                                    sourceOffset ASC) AND {options}""",
    "alerts": """
        CREATE TABLE IF NOT EXISTS {ks}.alerts (
            alertId text PRIMARY KEY, raisedAt timestamp, severity text, alert text,
            published boolean
        ) WITH {options}""",
    "alerts_by_day": """
        CREATE TABLE IF NOT EXISTS {ks}.alerts_by_day (
            bucket timestamp, raisedAt timestamp, alertId text, severity text, alert text,
            PRIMARY KEY ((bucket), raisedAt, alertId)
        ) WITH CLUSTERING ORDER BY (raisedAt DESC, alertId ASC) AND {options}""",
    "alerts_by_incident": """
        CREATE TABLE IF NOT EXISTS {ks}.alerts_by_incident (
            incidentId text, raisedAt timestamp, alertId text, alert text,
            PRIMARY KEY ((incidentId), raisedAt, alertId)
        ) WITH CLUSTERING ORDER BY (raisedAt ASC, alertId ASC) AND {options}""",
    "incidents": """
        CREATE TABLE IF NOT EXISTS {ks}.incidents (
            incidentId text PRIMARY KEY, alertId text
        ) WITH {options}""",
    "incident_book": """
        CREATE TABLE IF NOT EXISTS {ks}.incident_book (
            incidentId text PRIMARY KEY, version int, state text, openedAt timestamp,
            incident text
        ) WITH {options}""",
    "incidents_by_day": """
        CREATE TABLE IF NOT EXISTS {ks}.incidents_by_day (
            bucket timestamp, openedAt timestamp, incidentId text,
            PRIMARY KEY ((bucket), openedAt, incidentId)
        ) WITH CLUSTERING ORDER BY (openedAt DESC, incidentId ASC) AND {options}""",
    "incident_subjects": """
        CREATE TABLE IF NOT EXISTS {ks}.incident_subjects (
            subject text PRIMARY KEY, incidentId text
        ) WITH {options}""",
    "dataset_runs": """
        CREATE TABLE IF NOT EXISTS {ks}.dataset_runs (
            dsNamespace text, dsName text, bucket timestamp, runId text, direction text,
            jobNamespace text, jobName text, eventTime timestamp, rowCount bigint,
            sizeBytes bigint,
            PRIMARY KEY ((dsNamespace, dsName, bucket), runId, direction)
        ) WITH {options}""",
    "dataset_jobs": """
        CREATE TABLE IF NOT EXISTS {ks}.dataset_jobs (
            dsNamespace text, dsName text, direction text, jobNamespace text, jobName text,
            lastSeen timestamp,
            PRIMARY KEY ((dsNamespace, dsName), direction, jobNamespace, jobName)
        ) WITH {options}""",
    "job_datasets": """
        CREATE TABLE IF NOT EXISTS {ks}.job_datasets (
            jobNamespace text, jobName text, direction text, dsNamespace text, dsName text,
            lastSeen timestamp,
            PRIMARY KEY ((jobNamespace, jobName), direction, dsNamespace, dsName)
        ) WITH {options}""",
    "datasets_by_run": """
        CREATE TABLE IF NOT EXISTS {ks}.datasets_by_run (
            runId text, direction text, dsNamespace text, dsName text, jobNamespace text,
            jobName text, eventTime timestamp, rowCount bigint, sizeBytes bigint,
            PRIMARY KEY ((runId), direction, dsNamespace, dsName)
        ) WITH {options}""",
    "written_datasets": """
        CREATE TABLE IF NOT EXISTS {ks}.written_datasets (
            shard int, dsNamespace text, dsName text,
            PRIMARY KEY ((shard), dsNamespace, dsName)
        ) WITH {options}""",
    "stale_datasets": """
        CREATE TABLE IF NOT EXISTS {ks}.stale_datasets (
            scope text, dsNamespace text, dsName text, lapse text,
            PRIMARY KEY ((scope), dsNamespace, dsName)
        ) WITH default_time_to_live = 0""",
    "schema_meta": """
        CREATE TABLE IF NOT EXISTS {ks}.schema_meta (name text PRIMARY KEY, value text)
        WITH default_time_to_live = 0""",
}
TABLES = tuple(_TABLES)


def _table_options(options: CassandraOptions, retention_s: int | None) -> str:
    if options.compression == "none":
        compression = "{'enabled': 'false'}"
    else:
        compression = f"{{'class': '{options.compression}'}}"
    return f"compression = {compression} AND default_time_to_live = {retention_s or 0}"


def keyspace_cql(options: CassandraOptions) -> str:
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {options.keyspace} "
        f"WITH replication = {options.replication_cql} AND durable_writes = true"
    )


def table_cql(options: CassandraOptions, retention_s: int | None) -> dict[str, str]:
    """Each table's CREATE statement (keyspace and options filled in)."""
    table_options = _table_options(options, retention_s)
    return {
        name: " ".join(
            template.format(
                ks=options.keyspace, options=table_options, gc_grace=INDEX_GC_GRACE_S
            ).split()
        )
        for name, template in _TABLES.items()
    }


def retention_cql(options: CassandraOptions, table: str, retention_s: int | None) -> str:
    """Bring an existing table's TTL in line with LINEAGE_RETENTION."""
    return f"ALTER TABLE {options.keyspace}.{table} WITH default_time_to_live = {retention_s or 0}"
