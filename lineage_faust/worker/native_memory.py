"""What the live table's rocksdb databases hold in native memory, which Python cannot see.

Faust keeps one rocksdb database per partition of a table. Their memtables, block cache and
table readers (SST index and filter blocks, outside the block cache with Faust's options) are
part of the worker's RSS; these figures say how much, so a growing RSS can be told apart
from a growing Python heap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

# gauge label -> rocksdb property (bytes, summed over the databases)
PROPERTIES = {
    "memtables": "rocksdb.size-all-mem-tables",  # active + those waiting to be flushed
    "block_cache": "rocksdb.block-cache-usage",
    "table_readers": "rocksdb.estimate-table-readers-mem",
}


def native_bytes(databases: Iterable[Any]) -> Counter[str]:
    """Bytes by kind over ``databases`` (rocksdict ``Rdict``s); a closed one counts nothing."""
    totals: Counter[str] = Counter({kind: 0 for kind in PROPERTIES})
    for db in databases:
        for kind, name in PROPERTIES.items():
            try:
                totals[kind] += db.property_int_value(name) or 0
            except Exception:  # closed while a rebalance moves the partition
                continue
    return totals
