#!/usr/bin/env python3
"""Reads an Iceberg table back with engines we did not write, and prints one JSON object.

    read_table.py --catalog-uri sqlite:////path/catalog.db --warehouse file:///path/wh \
        --table ns.table [--catalog-name default] [--id-column id] [--engines pyiceberg,duckdb]
    read_table.py --rest-uri http://127.0.0.1:8181 --table ns.table ...

Output: {"pyiceberg": {...}, "duckdb": {...}} where each engine gives
row_count, ids (sorted, from --id-column), distinct_ids, partitions ({partition: rows}),
data_files, snapshots ([{"snapshot_id", "summary"}]); or {"error": "..."}.
Exit code 3 when a needed Python package is missing (the harness then skips).
"""
import argparse
import json
import os
import sys


def fail_missing(what):
    print(json.dumps({"missing": what}))
    sys.exit(3)


def load_catalog(args):
    try:
        from pyiceberg.catalog.sql import SqlCatalog
        from pyiceberg.catalog.rest import RestCatalog
    except ImportError as e:  # pragma: no cover
        fail_missing(f"pyiceberg[sql-sqlite,pyarrow] ({e})")
    props = {}
    for kv in args.prop or []:
        k, _, v = kv.partition("=")
        props[k] = v
    if args.rest_uri:
        return RestCatalog(args.catalog_name, uri=args.rest_uri, **props)
    return SqlCatalog(args.catalog_name, uri=args.catalog_uri, warehouse=args.warehouse, **props)


def read_pyiceberg(args):
    catalog = load_catalog(args)
    table = catalog.load_table(args.table)
    arrow = table.scan().to_arrow()
    out = {"row_count": arrow.num_rows}
    if args.id_column and args.id_column in arrow.column_names:
        ids = sorted(v for v in arrow.column(args.id_column).to_pylist() if v is not None)
        out["ids"] = ids if args.with_ids else None
        out["distinct_ids"] = len(set(ids))
        out["min_id"] = ids[0] if ids else None
        out["max_id"] = ids[-1] if ids else None
    if args.columns:
        out["rows"] = arrow.select(args.columns.split(",")).sort_by(args.id_column).to_pylist()[: args.limit]
    spec = table.spec()
    parts = {}
    files = 0
    for task in table.scan().plan_files():
        files += 1
        f = task.file
        key = "/".join(
            f"{field.name}={f.partition[i]}" for i, field in enumerate(spec.fields)
        ) or "unpartitioned"
        parts[key] = parts.get(key, 0) + f.record_count
    out["partitions"] = parts
    if args.check_partitions and not spec.is_unpartitioned():
        out["partition_mismatches"] = check_partitions(table, spec)
    out["data_files"] = files
    out["file_paths"] = [t.file.file_path for t in table.scan().plan_files()][:50]
    out["snapshots"] = [
        {"snapshot_id": s.snapshot_id, "summary": {k: v for k, v in s.summary.additional_properties.items()} | {"operation": str(s.summary.operation.value)}}
        for s in table.snapshots()
    ]
    out["metadata_location"] = table.metadata_location
    return out


def check_partitions(table, spec):
    """Reads every data file and recomputes each row's partition with pyiceberg's own
    transforms: the number of rows whose file sits in another partition."""
    import pyarrow.parquet as pq

    schema = table.schema()
    io = table.io
    fns = []
    for field in spec.fields:
        source = schema.find_field(field.source_id)
        fns.append((source.name, field.transform.transform(source.field_type)))
    bad = 0
    for task in table.scan().plan_files():
        f = task.file
        with io.new_input(f.file_path).open() as stream:
            data = pq.read_table(stream, columns=sorted({n for n, _ in fns}))
        columns = {n: data.column(n).to_pylist() for n, _ in fns}
        for row in range(data.num_rows):
            for i, (name, fn) in enumerate(fns):
                if fn(columns[name][row]) != f.partition[i]:
                    bad += 1
                    break
    return bad


def read_duckdb(args, metadata_location):
    try:
        import duckdb
    except ImportError as e:
        return {"skipped": f"duckdb is not installed ({e})"}
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    loaded = []
    for pkg, name in (("duckdb_extension_avro", "avro"), ("duckdb_extension_iceberg", "iceberg")):
        try:
            mod = __import__(pkg)
        except ImportError:
            if name == "iceberg":
                return {"skipped": "duckdb-extension-iceberg is not installed"}
            continue
        base = os.path.dirname(mod.__file__)
        paths = [os.path.join(r, f) for r, _, fs in os.walk(base) for f in fs if f.endswith(".duckdb_extension")]
        if not paths:
            return {"skipped": f"{pkg} ships no extension file"}
        con.execute(f"LOAD '{paths[0]}'")
        loaded.append(name)
    location = metadata_location
    if location.startswith("file://"):
        location = location[len("file://"):]
    scan = f"iceberg_scan('{location}')"
    out = {"extensions": loaded}
    out["row_count"] = con.execute(f"SELECT count(*) FROM {scan}").fetchone()[0]
    if args.id_column:
        r = con.execute(
            f"SELECT count(DISTINCT {args.id_column}), min({args.id_column}), max({args.id_column}) FROM {scan}"
        ).fetchone()
        out["distinct_ids"], out["min_id"], out["max_id"] = r
    if args.group_by:
        rows = con.execute(
            f"SELECT {args.group_by}, count(*) FROM {scan} GROUP BY 1 ORDER BY 1"
        ).fetchall()
        out["groups"] = {str(k): v for k, v in rows}
    out["snapshots"] = [
        {"snapshot_id": r[0]} for r in con.execute(f"SELECT snapshot_id FROM iceberg_snapshots('{location}')").fetchall()
    ]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--catalog-uri")
    p.add_argument("--warehouse")
    p.add_argument("--rest-uri")
    p.add_argument("--catalog-name", default="default")
    p.add_argument("--table", required=True)
    p.add_argument("--id-column", default="id")
    p.add_argument("--with-ids", action="store_true")
    p.add_argument("--columns")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--group-by")
    p.add_argument("--check-partitions", action="store_true")
    p.add_argument("--engines", default="pyiceberg,duckdb")
    p.add_argument("--prop", action="append", help="extra catalog property k=v")
    args = p.parse_args()
    engines = args.engines.split(",")
    result = {}
    try:
        import pyiceberg  # noqa: F401
        import pyarrow  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as e:
        fail_missing(f"pyiceberg[sql-sqlite,pyarrow] ({e})")
    try:
        result["pyiceberg"] = read_pyiceberg(args)
    except Exception as e:  # noqa: BLE001
        result["pyiceberg"] = {"error": f"{type(e).__name__}: {e}"}
    if "duckdb" in engines:
        location = result["pyiceberg"].get("metadata_location")
        if location is None:
            result["duckdb"] = {"skipped": "no metadata location (pyiceberg failed)"}
        else:
            try:
                result["duckdb"] = read_duckdb(args, location)
            except Exception as e:  # noqa: BLE001
                result["duckdb"] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
