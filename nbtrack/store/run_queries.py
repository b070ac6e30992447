"""Read runs out of the DuckDB store: single runs, searches, histories and read-only SQL.

Every function takes an open connection and the store (for paths); none of them writes.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict

from nbtrack.entities import (
    Dataset,
    DatasetInput,
    MetricHistory,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunSource,
    ViewType,
)
from nbtrack.exceptions import InvalidValueError
from nbtrack.search.parser import parse_filter, parse_order_by
from nbtrack.store import run_index
from nbtrack.store.run_index import quote
from nbtrack.store.search_sql import plan_search

_RUN_COLUMNS = run_index.BASE_COLUMNS
_RUN_SELECT = ", ".join(f"r.{c}" for c in _RUN_COLUMNS)
# One query for runs' params (kind 0), tags (1) and latest metrics (2): used when the index
# lacks some keys (past its column cap).
_VALUES = """
SELECT run_id, 0 AS kind, key, value, NULL::DOUBLE AS number FROM params
    WHERE run_id IN (SELECT unnest($1))
UNION ALL SELECT run_id, 1, key, value, NULL FROM tags WHERE run_id IN (SELECT unnest($1))
UNION ALL SELECT run_id, 2, key, NULL, value FROM latest_metrics
    WHERE run_id IN (SELECT unnest($1))
"""
_KINDS = {"params.": 0, "tags.": 1, "metrics.": 2}
_SOURCE_COLUMNS = (  # in RunSource's field order
    "source_type", "source_name", "source_code", "git_commit", "git_branch", "git_dirty",
    "git_diff", "host", "python_version", "platform", "env_hash",
)


def _inputs(conn, store, run_ids: list[str]) -> dict[str, list[DatasetInput]]:
    inputs: dict[str, list[DatasetInput]] = defaultdict(list)
    cache = store.session_cache()
    if "has_inputs" not in cache:
        cache["has_inputs"] = bool(conn.execute("SELECT count(*) FROM inputs").fetchone()[0])
    if not cache["has_inputs"]:
        return inputs
    for row in conn.execute(
        "SELECT i.run_id, d.name, d.digest, d.source_type, d.source, d.schema, d.profile, "
        "i.context FROM inputs i JOIN datasets d ON d.name = i.dataset_name AND "
        "d.digest = i.dataset_digest WHERE i.run_id IN (SELECT unnest(?))",
        [run_ids],
    ).fetchall():
        inputs[row[0]].append(DatasetInput(Dataset(*row[1:7]), row[7]))
    return inputs


def _values_from_index(table, ids: list[str]) -> list[dict[str, dict]]:
    """``[params, tags, metrics]``, each ``{run_id: {key: value}}``, from index columns."""
    values: list[dict[str, dict]] = [defaultdict(dict) for _ in range(3)]
    for name in table.column_names:
        kind = next((k for prefix, k in _KINDS.items() if name.startswith(prefix)), None)
        column = table.column(name)
        if kind is None or column.null_count == len(column):
            continue
        key = name.split(".", 1)[1]
        target = values[kind]
        for run_id, value in zip(ids, column.to_pylist(), strict=True):
            if value is not None:
                target[run_id][key] = value
    return values


def load_runs(conn, store, run_ids: list[str]) -> list[Run]:
    """The runs with these ids, in the given order (unknown ids are skipped)."""
    if not run_ids:
        return []
    table = conn.execute(
        "SELECT * FROM run_index WHERE run_id IN (SELECT unnest(?))", [run_ids]
    ).to_arrow_table()
    by_id = {run.info.run_id: run for run in _runs_from_index(conn, store, table)}
    return [by_id[r] for r in run_ids if r in by_id]


def _runs_from_index(conn, store, table) -> list[Run]:
    """``Run`` entities from ``run_index`` rows (as Arrow), in the table's order."""
    ids = table.column("run_id").to_pylist()
    if store.index_columns(conn)[1]:
        params, tags, metrics = _values_from_index(table, ids)
    else:
        params, tags, metrics = [defaultdict(dict) for _ in range(3)]
        for run_id, kind, key, value, number in conn.execute(_VALUES, [ids]).fetchall():
            (params, tags, metrics)[kind][run_id][key] = number if kind == 2 else value
    inputs = _inputs(conn, store, ids)
    columns = table.select(list(_RUN_COLUMNS)).to_pydict()
    root = str(store.root)
    runs = []
    for i, run_id in enumerate(ids):
        artifact_uri = columns["artifact_uri"][i]
        info = RunInfo(
            run_id, columns["experiment_id"][i], columns["run_name"][i], columns["user_id"][i],
            columns["status"][i], columns["start_time"][i], columns["end_time"][i],
            columns["lifecycle_stage"][i], f"{root}/{artifact_uri}" if artifact_uri else "",
            columns["parent_run_id"][i], columns["description"][i],
        )
        source = RunSource(*(columns[c][i] for c in _SOURCE_COLUMNS))
        data = RunData(metrics=metrics[run_id], params=params[run_id], tags=tags[run_id])
        runs.append(Run(info, data, RunInputs(inputs.get(run_id, [])), source))
    return runs


def metric_history(conn, store, run_id: str, key: str) -> MetricHistory:
    """Every value of a metric, by step then timestamp."""
    columns = conn.execute(
        'SELECT value, step, "timestamp" FROM metrics WHERE run_id = ? AND key = ? '
        'ORDER BY step, "timestamp"',
        [run_id, key],
    ).fetchnumpy()
    return MetricHistory(key, columns["value"], columns["step"], columns["timestamp"])


def histories_arrow(conn, store, run_ids: list[str], key: str, max_points: int):
    """Several runs' histories of one metric as Arrow ``run_id, step, timestamp, value``.

    A run with more than ``max_points`` values is thinned evenly (first and last kept).
    """
    return conn.execute(
        'SELECT run_id, step, "timestamp", value FROM ('
        '  SELECT *, row_number() OVER w - 1 AS i, count(*) OVER (PARTITION BY run_id) AS n'
        '  FROM metrics WHERE run_id IN (SELECT unnest(?)) AND key = ?'
        '  WINDOW w AS (PARTITION BY run_id ORDER BY step, "timestamp"))'
        ' WHERE n <= ? OR i % ceil(n / ?)::BIGINT = 0 OR i = n - 1'
        ' ORDER BY run_id, step, "timestamp"',
        [list(run_ids), key, max_points, max_points],
    ).to_arrow_table()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError
        return offset
    except Exception:
        raise InvalidValueError(
            f"The page token {token!r} is not one nbtrack issued. Pass the token from the "
            "previous page's result unchanged, or None for the first page."
        ) from None


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _search_sql(columns: str, conn, store, experiment_ids, filter_string, view_type, order_by):
    plan = plan_search(parse_filter(filter_string), parse_order_by(order_by),
                       *store.index_columns(conn))
    sql = (
        f"SELECT {columns} FROM run_index r {' '.join(plan.joins)} "
        "WHERE list_contains(?, r.experiment_id) AND list_contains(?, r.lifecycle_stage) "
        f"AND {plan.where} ORDER BY {plan.order} LIMIT ? OFFSET ?"
    )
    stages = list(ViewType.stages(view_type))
    ids = [str(e) for e in experiment_ids]
    return sql, [*plan.join_params, ids, stages, *plan.where_params]


def _check_max_results(max_results: int) -> int:
    if not isinstance(max_results, int) or isinstance(max_results, bool) or max_results < 0:
        raise InvalidValueError(f"max_results must be a whole number >= 0, not {max_results!r}.")
    return max_results


def search_runs(conn, store, experiment_ids, filter_string, view_type, max_results, order_by,
                page_token):
    """A page of runs and the token for the next page (None on the last page)."""
    limit = _check_max_results(max_results)
    offset = _decode_token(page_token)
    sql, params = _search_sql("r.*", conn, store, experiment_ids, filter_string, view_type,
                              order_by)
    table = conn.execute(sql, [*params, limit + 1, offset]).to_arrow_table()
    token = _encode_token(offset + limit) if len(table) > limit else None
    return _runs_from_index(conn, store, table.slice(0, limit)), token


_FRAME_COLUMNS = (
    "run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time", "run_name",
    "user_id", "parent_run_id",
)


def search_runs_frame(conn, store, experiment_ids, filter_string, view_type, max_results,
                      order_by):
    """The matching runs as a DataFrame: MLflow's columns, then metrics.*, params.*, tags.*.

    Key columns that no matching run has are left out, as MLflow does.
    """
    import pandas as pd

    limit = _check_max_results(max_results)
    keys, complete = store.index_columns(conn)
    columns = ", ".join([f"r.{c}" for c in _FRAME_COLUMNS]
                        + [f"r.{quote(k)}" for k in sorted(keys)])
    sql, params = _search_sql(columns, conn, store, experiment_ids, filter_string, view_type,
                              order_by)
    table = conn.execute(sql, [*params, limit, 0]).to_arrow_table()
    if not complete:
        table = _add_unindexed_keys(conn, table)
    rows = len(table)
    kept = [n for n in table.column_names
            if n in _FRAME_COLUMNS or (rows and table.column(n).null_count < rows)]
    frame = table.select(kept).to_pandas()
    root = str(store.root)
    frame["artifact_uri"] = [f"{root}/{p}" if p else p for p in frame["artifact_uri"]]
    for col in ("start_time", "end_time"):
        frame[col] = pd.to_datetime(frame[col], unit="ms", utc=True)
    return frame


TABLE_COLUMNS = ("run_id", "run_name", "status", "start_time", "end_time", "parent_run_id",
                 "experiment_id")


def search_runs_arrow(conn, store, experiment_ids, filter_string, view_type, max_results,
                      order_by, keys):
    """``(table, total)``: at most ``max_results`` matching runs, and how many match in all.

    The table has ``TABLE_COLUMNS`` and the asked-for key columns (``metrics.rmse``; all null
    where no run has it).
    """
    import pyarrow as pa

    limit = _check_max_results(max_results)
    indexed, complete = store.index_columns(conn)
    present = [k for k in keys if k in indexed]
    columns = ", ".join([f"r.{c}" for c in TABLE_COLUMNS] + [f"r.{quote(k)}" for k in present])
    sql, params = _search_sql(columns + ", count(*) OVER () AS _total", conn, store,
                              experiment_ids, filter_string, view_type, order_by)
    table = conn.execute(sql, [*params, limit, 0]).to_arrow_table()
    total = table.column("_total")[0].as_py() if len(table) else 0
    table = table.drop_columns(["_total"])
    if not complete and len(table):
        table = _add_unindexed_keys(conn, table)
    for key in keys:
        if key not in table.column_names:
            kind = pa.float64() if key.startswith("metrics.") else pa.string()
            table = table.append_column(key, pa.nulls(len(table), kind))
    return table.select([*TABLE_COLUMNS, *keys]), total


def key_counts(conn, store, experiment_ids, view_type) -> dict[str, int]:
    """``{key column: number of runs that have it}`` over the experiments' runs, most first."""
    indexed, _ = store.index_columns(conn)
    if not indexed:
        return {}
    names = sorted(indexed)
    counts = ", ".join(f"count(r.{quote(n)})" for n in names)
    row = conn.execute(
        f"SELECT {counts} FROM run_index r WHERE list_contains(?, r.experiment_id) "
        "AND list_contains(?, r.lifecycle_stage)",
        [[str(e) for e in experiment_ids], list(ViewType.stages(view_type))],
    ).fetchone()
    found = {n: c for n, c in zip(names, row, strict=True) if c}
    return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))


def _add_unindexed_keys(conn, table):
    """Past the index's column cap: add the keys it lacks, pivoted from the normalised tables."""
    import pyarrow as pa

    have = set(table.column_names)
    conn.register("_nb_page", table.select(["run_id"]))
    try:
        for prefix, source in (("metrics.", "latest_metrics"), ("params.", "params"),
                               ("tags.", "tags")):
            # prefix and source are constants above, never user input
            pivot = conn.execute(
                f"PIVOT (SELECT k.run_id, '{prefix}' || k.key AS name, k.value FROM {source} k "
                "SEMI JOIN _nb_page p ON p.run_id = k.run_id) "
                "ON name USING first(value) GROUP BY run_id"
            ).to_arrow_table()
            extra = [n for n in pivot.column_names if n != "run_id" and n not in have]
            if extra:
                lookup = dict(zip(pivot.column("run_id").to_pylist(),
                                  range(len(pivot)), strict=True))
                order = pa.array([lookup.get(r) for r in table.column("run_id").to_pylist()])
                for name in extra:
                    table = table.append_column(name, pivot.column(name).take(order))
    finally:
        conn.unregister("_nb_page")
    return table


def artifact_index(conn, store, run_id: str) -> dict[str, tuple[int, str]]:
    """``{path: (size, sha256)}`` for a run."""
    rows = conn.execute(
        "SELECT path, file_size, sha256 FROM artifacts WHERE run_id = ?", [run_id]
    ).fetchall()
    return {path: (size, sha) for path, size, sha in rows}


def environment(conn, store, env_hash: str) -> dict | None:
    """An environment record by hash."""
    row = conn.execute(
        "SELECT python_version, platform, packages FROM environments WHERE env_hash = ?",
        [env_hash],
    ).fetchone()
    if row is None:
        return None
    return {
        "python_version": row[0],
        "platform": row[1],
        "packages": {p["name"]: p["version"] for p in row[2] or []},
    }


def read_only_sql(conn, store, query: str, parameters: list | None):
    """Run one SELECT with the ``nbtrack`` views first on the search path, then roll back."""
    import duckdb

    try:
        statements = conn.extract_statements(query)
    except duckdb.Error as exc:
        raise InvalidValueError(f"nbtrack.sql could not parse the query: {exc}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(s.type.name for s in statements) or "nothing"
        raise InvalidValueError(
            f"nbtrack.sql runs exactly one read-only SELECT over the store's views; this query "
            f"holds {kinds}. To change the store, use the Client's methods."
        )
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute("SET search_path = 'nbtrack,main'")
        try:
            return conn.execute(query, parameters or []).df()
        except duckdb.Error as exc:
            raise InvalidValueError(f"nbtrack.sql: {exc}") from None
    finally:
        conn.execute("ROLLBACK")
        conn.execute("RESET search_path")
