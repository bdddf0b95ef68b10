"""The Cassandra store's CQL, checked offline with Cassandra's own grammar (cqlsh's cqlshlib).

No cluster is needed: every CREATE, ALTER and prepared statement must parse as CQL, refer
only to columns its table has, and query by key as Cassandra requires (every partition-key
column restricted by equality, so no statement needs ALLOW FILTERING or scans partitions).
The statements' behaviour is checked against a real cluster by the contract suite whenever
LINEAGE_CASSANDRA_HOSTS is set.
"""

from __future__ import annotations

import re

import pytest

from lineage_faust.settings import parse_cassandra
from lineage_faust.store.cassandra import schema
from lineage_faust.store.cassandra.statements import _statements

cql3 = pytest.importorskip("cqlshlib.cql3handling", reason="cqlsh (dev extra) not installed")

OPTIONS = parse_cassandra("cassandra://db1,db2:9042/openlineage?replication=dc1:3,dc2:3", {})


def parse(statement: str):
    """Cassandra's grammar over one statement (bind markers stand in as literals)."""
    text = statement.replace("IN ?", "IN (1)").replace("?", "1")  # IN ? binds a whole list
    # Cassandra accepts a one-column partition key in parentheses, PRIMARY KEY ((runID), ...),
    # as Atlas writes it; cqlsh's completion grammar only knows the form without.
    text = re.sub(r"PRIMARY KEY \(\((\w+)\),", r"PRIMARY KEY (\1,", text)
    statements, _ = cql3.CqlRuleSet.cql_split_statements(text + ";")
    tokens = [s for s in statements if s]
    assert len(tokens) == 1, statement
    return cql3.CqlRuleSet.cql_whole_parse_tokens(tokens[0], srcstr=text, startsymbol="Start")


def table_layout(create: str) -> tuple[set[str], list[str], list[str]]:
    """Columns, partition key and clustering columns of one of our CREATE TABLE statements."""
    body = create[create.index("(") + 1 : create.rindex(")")]
    columns = {m.group(1).lower() for m in re.finditer(r"(?:^|,)\s*(\w+)\s+(?!KEY)\w+", body)}
    if "PRIMARY KEY ((" in body:
        keys = re.search(r"PRIMARY KEY \(\(([^)]*)\)(?:,\s*([^)]*))?\)", body)
        assert keys
        partition = [c.strip().lower() for c in keys.group(1).split(",")]
        clustering = [c.strip().lower() for c in (keys.group(2) or "").split(",") if c.strip()]
    else:
        match = re.search(r"(\w+) text PRIMARY KEY", body)
        assert match
        partition, clustering = [match.group(1).lower()], []
    return columns, partition, clustering


CREATES = schema.table_cql(OPTIONS, 86_400)
LAYOUTS = {name: table_layout(cql) for name, cql in CREATES.items()}


def test_atlas_events_by_run_is_exactly_atlas() -> None:
    columns, partition, clustering = LAYOUTS["events_by_run"]
    assert columns == {"eventid", "source", "jobname", "runid", "eventtime", "event", "status"}
    assert partition == ["runid"] and clustering == ["eventid"]
    assert "eventId timeuuid" in CREATES["events_by_run"]
    assert "CLUSTERING ORDER BY (eventId DESC)" in CREATES["events_by_run"]


@pytest.mark.parametrize("name", schema.TABLES)
def test_every_create_parses(name: str) -> None:
    for create in _in_parts(CREATES[name]):
        assert parse(create) is not None, create


def _in_parts(create: str, per_part: int = 8) -> list[str]:
    """cqlsh's grammar takes exponential time in a table's column count: parse a wide
    table as several CREATEs, each with the key and up to ``per_part`` other columns."""
    head, rest = create.split("(", 1)
    body, tail = rest.rsplit(")", 1)
    if "PRIMARY KEY (" not in body:  # single key column declared inline
        key, *others = [c.strip() for c in body.split(",")]
        key_parts, suffix = [key], []
    else:
        definitions, primary = body.split(", PRIMARY KEY", 1)
        _, partition, clustering = table_layout(create)
        columns = [c.strip() for c in definitions.split(",")]
        keys = set(partition + clustering)
        key_parts = [c for c in columns if c.split()[0].lower() in keys]
        others = [c for c in columns if c.split()[0].lower() not in keys]
        suffix = [f"PRIMARY KEY{primary}"]
    chunks = [others[i : i + per_part] for i in range(0, len(others), per_part)] or [[]]
    return [f"{head}({', '.join(key_parts + chunk + suffix)}){tail}" for chunk in chunks]


def test_keyspace_and_retention_statements_parse() -> None:
    assert parse(schema.keyspace_cql(OPTIONS)) is not None
    assert "NetworkTopologyStrategy" in schema.keyspace_cql(OPTIONS)
    simple = parse_cassandra("cassandra://h/ks?replication=3", {})
    assert "'SimpleStrategy', 'replication_factor': 3" in schema.keyspace_cql(simple)
    for table in schema.DATA_TABLES:
        assert parse(schema.retention_cql(OPTIONS, table, 3600)) is not None


def test_a_broken_statement_is_caught() -> None:
    """The check itself can fail."""
    assert parse("SELECT runId FROM openlineage.run_status WHERE runId = ? LIMT 1") is None


STATEMENTS = _statements(OPTIONS.keyspace)


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_prepared_statement_fits_its_table(name: str) -> None:
    cql = STATEMENTS[name]
    parsed = parse(cql)
    assert parsed is not None, cql
    table = re.search(rf"{OPTIONS.keyspace}\.(\w+)", cql)
    assert table
    columns, partition, clustering = LAYOUTS[table.group(1)]
    used = {c.lower() for c in re.findall(r"\b([A-Za-z]\w*)\b", _column_part(cql))}
    assert used <= columns | {"count"}, f"{name}: unknown columns {used - columns}"
    if cql.startswith(("SELECT", "DELETE", "UPDATE")):
        where = cql.split(" WHERE ", 1)[1]
        equal = {c.lower() for c in re.findall(r"(\w+) (?:=|IN) \?", where)}
        ranged = {c.lower() for c in re.findall(r"(\w+) [<>]=? \?", where)}
        assert set(partition) <= equal, f"{name}: partition key not fully restricted"
        assert ranged <= set(clustering[:1]), f"{name}: range on a non-leading clustering column"
    if cql.startswith("DELETE"):
        assert set(partition + clustering) <= equal, f"{name}: must delete one row by full key"
    if cql.startswith("INSERT"):
        inserted = {c.strip().lower() for c in cql.split("(", 1)[1].split(")", 1)[0].split(",")}
        assert set(partition + clustering) <= inserted, f"{name}: insert without full key"


def _column_part(cql: str) -> str:
    """The identifiers of a statement that name columns (select list, where, insert list)."""
    if cql.startswith("SELECT"):
        select_list = cql[len("SELECT ") : cql.index(" FROM ")].replace("count(*)", "count")
        where = cql.split(" WHERE ", 1)[1].split(" LIMIT ")[0]
        return select_list + " " + re.sub(r"\b(AND|IN)\b", " ", where).replace("?", "")
    if cql.startswith("INSERT"):
        return cql.split("(", 1)[1].split(")", 1)[0]
    where = re.sub(r" IF (NOT )?EXISTS$", "", cql.split(" WHERE ", 1)[1])
    where = where.replace(" IF ", " AND ")  # a lightweight transaction's condition: columns
    if cql.startswith("UPDATE"):  # the SET list names columns too
        set_list = cql.split(" SET ", 1)[1].split(" WHERE ", 1)[0]
        where += " " + re.sub(r"= (\?|true|false)", " ", set_list).replace(",", " ")
    return re.sub(r"\b(AND)\b", " ", where).replace("?", "")
