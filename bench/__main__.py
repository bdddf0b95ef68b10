"""Every benchmark in one run, one table: ``python -m bench`` (or ``make bench``).

    python -m bench [--events 100000] [--api-events 1000000] [--memory-runs 1000000]
                    [--backlog 150000]
                    [--only throughput freshness detect recover cold_start api lineage memory]
                    [--quick]

Each part starts its own embedded broker and real processes; figures are printed beside a
ceiling or baseline measured in the same run (these machines are noisy), and the whole table
is written to bench-results/bench.json. ``--quick`` shrinks every size for a fast look
(about 5 minutes; the full run takes about an hour on a 2-core machine).
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import (
    api_latency,
    cold_start,
    detect,
    freshness,
    lineage,
    memory,
    recover,
    throughput,
)
from bench.report import Row, print_table, write_json

PARTS = (
    "throughput",
    "freshness",
    "detect",
    "recover",
    "cold_start",
    "api",
    "lineage",
    "memory",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--api-events", type=int, default=1_000_000)
    parser.add_argument("--memory-runs", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=150_000, help="cold start via `up`")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--quick", action="store_true", help="small sizes: a fast look")
    args = parser.parse_args()
    if args.quick:
        args.events, args.api_events, args.memory_runs = 20_000, 50_000, 150_000
        args.backlog = 30_000
    rows: list[Row] = []
    started = time.perf_counter()
    for part in args.only:
        print(f"== {part} ({time.perf_counter() - started:.0f} s so far)", file=sys.stderr)
        if part == "throughput":
            rows += throughput.run(args.events, [1, 2])
        elif part == "freshness":
            rows += freshness.run(args.rate, 30)
        elif part == "detect":
            rows += detect.run(list(detect.CASES), 40 if args.quick else 120, args.rate)
        elif part == "recover":
            rows += recover.run(10_000)
        elif part == "cold_start":
            rows += cold_start.run(args.backlog)
        elif part == "api":
            rows += api_latency.run(args.api_events, 2000, [1, 4])
        elif part == "lineage":
            rows += lineage.run(400 if args.quick else 2000, 100 if args.quick else 200)
        else:
            rows += memory.run(args.memory_runs)
        print_table(rows, file=sys.stderr)  # so far: a long run shows progress
    print_table(rows)
    path = write_json(
        "bench",
        rows,
        events=args.events,
        api_events=args.api_events,
        memory_runs=args.memory_runs,
        backlog=args.backlog,
        seconds=round(time.perf_counter() - started),
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
