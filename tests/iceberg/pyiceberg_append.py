#!/usr/bin/env python3
"""pyiceberg appending rows to a SQL-catalog (SQLite) table: the comparison for
tests/benches/iceberg_sink.rs.

    pyiceberg_append.py --jsonl rows.jsonl --dir /tmp/x [--batch 100000]

Reads the JSON lines into Arrow first (not timed), then times `table.append` of
`--batch`-row slices (one snapshot each, like the sink's commit_rows). Prints
{"rows", "seconds", "rows_per_s", "data_files", "snapshots"}; exit code 3 when
pyiceberg is missing.
"""
import argparse
import json
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jsonl", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--batch", type=int, default=100_000)
    args = p.parse_args()
    try:
        import pyarrow as pa
        import pyarrow.json as pj
        from pyiceberg.catalog.sql import SqlCatalog
    except ImportError as e:
        print(json.dumps({"missing": str(e)}))
        sys.exit(3)
    data = pj.read_json(args.jsonl)
    # The same types the sink writes (long, string, double).
    fields = []
    for f in data.schema:
        t = f.type
        if pa.types.is_integer(t):
            t = pa.int64()
        elif pa.types.is_floating(t):
            t = pa.float64()
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            t = pa.large_string()
        fields.append(pa.field(f.name, t, nullable=True))
    data = data.cast(pa.schema(fields))
    catalog = SqlCatalog(
        "default",
        uri=f"sqlite:///{args.dir}/catalog.db",
        warehouse=f"file://{args.dir}/warehouse",
    )
    catalog.create_namespace_if_not_exists("bench")
    table = catalog.create_table("bench.py_orders", schema=data.schema)
    started = time.perf_counter()
    for offset in range(0, data.num_rows, args.batch):
        table.append(data.slice(offset, args.batch))
    seconds = time.perf_counter() - started
    table = catalog.load_table("bench.py_orders")
    files = sum(1 for _ in table.scan().plan_files())
    print(json.dumps({
        "rows": data.num_rows,
        "seconds": seconds,
        "rows_per_s": data.num_rows / seconds,
        "data_files": files,
        "snapshots": len(table.snapshots()),
    }))


if __name__ == "__main__":
    main()
