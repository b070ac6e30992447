"""What turning DuckLake's data inlining off costs the team store (``nbtrack team init`` does).

With inlining on (DuckLake's default, 10 rows), a small commit's rows go into PostgreSQL tables
of the catalog, which DuckLake creates per table and schema version, so every writer would need
``CREATE`` on the catalog's schema. With it off, each commit writes Parquet files instead. This
measures, on a throwaway PostgreSQL server and a local data folder, for both settings: the time
of ``MERGES`` small merges (a few metric points each, read back after each, as a notebook does),
the Parquet files they leave, reading a metric's history and searching afterwards, and the same
reads after the maintainer's compaction (``ducklake_rewrite_data_files`` then
``ducklake_merge_adjacent_files``). Files are those the current snapshot reads (data and delete
files, from ``ducklake_table_info``); older ones stay on disk until snapshots expire.

    python bench/lake_inlining.py [--merges 200]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_server import PostgresServer, postgres_bin_dir


def measure(server: PostgresServer, folder: Path, inlining: int | None, merges: int) -> dict:
    import duckdb

    from nbtrack.entities import RunSource
    from nbtrack.store import lake_extensions
    from nbtrack.store.base import NewRun
    from nbtrack.store.ducklake_store import DuckLakeStore

    database = server.create_database("bench")
    data = folder / database
    data.mkdir()
    if inlining is not None:  # as `nbtrack team init` does, before any table exists
        conn = duckdb.connect(config={"autoinstall_known_extensions": False,
                                      "autoload_known_extensions": False})
        lake_extensions.load(conn)
        conn.execute(f"ATTACH 'ducklake:postgres:{server.libpq(database)}' AS lake "
                     f"(DATA_PATH '{data}/')")
        conn.execute(f"CALL lake.set_option('data_inlining_row_limit', {inlining})")
        conn.close()
    uri = (f"ducklake:postgresql://{server.user}@{server.host}:{server.port}/{database}"
           f"?data={data}&spool={folder / (database + '-local')}")
    store = DuckLakeStore(uri, create=True)
    try:
        store.create_run(NewRun(run_id="r", experiment_id="0", run_name="r", user_id="b",
                                start_time=1, parent_run_id=None, description=None,
                                source=RunSource(type="LOCAL", name="bench"), pid=None))
        start = time.perf_counter()
        for merge in range(merges):
            for point in range(3):
                step = merge * 3 + point
                store.add_metric("r", "loss", 1.0 / (step + 1), step, step)
            store.get_run("r")  # merges what is pending, then reads
        merging = time.perf_counter() - start
        files = _live_files(store)
        reads = _reads(store)
        start = time.perf_counter()
        with store._connection.use() as conn:
            conn.execute("CALL ducklake_rewrite_data_files('lake')")
            conn.execute("CALL ducklake_merge_adjacent_files('lake')")
        compacting = time.perf_counter() - start
        compacted = _reads(store)
        return {"merge_ms": 1000 * merging / merges, "files": files,
                "files_compacted": _live_files(store), "compact_s": compacting,
                "history_ms": reads[0], "search_ms": reads[1],
                "history_ms_compacted": compacted[0], "search_ms_compacted": compacted[1]}
    finally:
        store.close()


def _live_files(store) -> int:
    """Data and delete files the lake's current snapshot reads."""
    with store._connection.use() as conn:
        (count,) = conn.execute("SELECT sum(file_count + delete_file_count) FROM "
                                "ducklake_table_info('lake')").fetchone()
    return int(count or 0)


def _reads(store) -> tuple[float, float]:
    best_history = best_search = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        store.get_metric_history("r", "loss")
        best_history = min(best_history, time.perf_counter() - start)
        start = time.perf_counter()
        store.search_runs(["0"], "metrics.loss < 1", 1, 10, None, None)
        best_search = min(best_search, time.perf_counter() - start)
    return 1000 * best_history, 1000 * best_search


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merges", type=int, default=200)
    args = parser.parse_args()
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        print("PostgreSQL is not installed (initdb, pg_ctl, psql)", file=sys.stderr)
        return 1
    import os
    import pwd

    root = Path(tempfile.mkdtemp(prefix="nbtrack-bench-pg-"))
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    server = PostgresServer(bin_dir, root, run_as)
    if run_as:
        pwd.getpwnam("postgres")
        server.give_to_server(root)
    server.start()
    os.environ["PGPASSWORD"] = server.password
    try:
        folder = Path(tempfile.mkdtemp(prefix=f"nbtrack-bench-{secrets.token_hex(2)}-"))
        print(f"{args.merges} merges of 3 points each, one run, local PostgreSQL and folder")
        print(f"{'inlining':<22}{'merge ms':>9}{'files':>7}{'history ms':>11}{'search ms':>10}"
              f"{'| compacted: files':>19}{'history ms':>11}{'search ms':>10}{'took s':>8}")
        for label, inlining in (("on (DuckLake's 10)", None), ("off (team init)", 0)):
            found = measure(server, folder, inlining, args.merges)
            print(f"{label:<22}{found['merge_ms']:>9.1f}{found['files']:>7}"
                  f"{found['history_ms']:>11.1f}{found['search_ms']:>10.1f}"
                  f"{found['files_compacted']:>19}{found['history_ms_compacted']:>11.1f}"
                  f"{found['search_ms_compacted']:>10.1f}{found['compact_s']:>8.1f}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
