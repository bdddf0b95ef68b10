"""Recorded Airflow and dbt events, and realistic streams made of them: copies with fresh
run ids.

``SAMPLES``: the events of three DAG runs recorded from Airflow 3.3.2 with the OpenLineage
provider 2.20.3 (one succeeds, one fails on both tries of a task, one sleeps and maps a
task), shipped with the package (``lineage-faust send --samples``).

``DBT_SAMPLES``: a dbt project recorded with dbt-core 1.11.16 (DuckDB adapter) and
openlineage-dbt 1.54.0 (``dbt-ol ... --consume-structured-logs``): a shop's 7 seeds, 7
staging, 3 intermediate and 14 mart models, seeded and run twice. The first run succeeds;
before the second the payments source renames a column, so ``stg_payments`` fails (a DuckDB
binder error) and dbt skips the 10 models downstream of it (each an ABORT). Every model's
run names its inputs and outputs (and has one child run per SQL statement); shipped with
the package too (``lineage-faust send --samples`` sends both sets).

Each copy of the sample set is a new "day" of the same DAGs: every run id is replaced
consistently (the run's own id, and its parent/root references), so DAG/task links stay
right and the run states of each copy are those of the samples.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson

SAMPLES = Path(__file__).resolve().parent / "airflow-3.3.2-provider-2.20.3.jsonl"
DBT_SAMPLES = Path(__file__).resolve().parent / "dbt-1.11.16-openlineage-dbt-1.54.0.jsonl"


def load_lines(path: Path = SAMPLES) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def run_ids(lines: list[bytes]) -> list[str]:
    return sorted({orjson.loads(line)["run"]["runId"] for line in lines})


def fresh_copies(lines: list[bytes], copies: int, seed: int = 0) -> Iterator[list[bytes]]:
    """Yield ``copies`` lists of events, each the samples with new, consistent run ids."""
    originals = run_ids(lines)
    pattern = re.compile("|".join(re.escape(r) for r in originals).encode())
    rng = random.Random(seed)
    for _ in range(copies):
        mapping = {
            old.encode(): str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()
            for old in originals
        }
        yield [pattern.sub(lambda m, mp=mapping: mp[m.group(0)], line) for line in lines]
