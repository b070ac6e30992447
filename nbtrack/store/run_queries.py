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
from nbtrack.store.search_sql import plan_search

_RUN_COLUMNS = (
    "run_id", "experiment_id", "run_name", "user_id", "status", "start_time", "end_time",
    "lifecycle_stage", "artifact_uri", "parent_run_id", "description", "source_type",
    "source_name", "source_code", "git_commit", "git_branch", "git_dirty", "git_diff", "host",
    "python_version", "platform", "env_hash",
)
_RUN_SELECT = ", ".join(f"r.{c}" for c in _RUN_COLUMNS)
# One query for a page's params (kind 0), tags (1), latest metrics (2) and inputs (3).
_VALUES = """
SELECT run_id, 0 AS kind, key, value, NULL::DOUBLE AS number FROM params
    WHERE run_id IN (SELECT unnest($1))
UNION ALL SELECT run_id, 1, key, value, NULL FROM tags WHERE run_id IN (SELECT unnest($1))
UNION ALL SELECT run_id, 2, key, NULL, value FROM latest_metrics
    WHERE run_id IN (SELECT unnest($1))
UNION ALL SELECT run_id, 3, dataset_name, dataset_digest, NULL FROM inputs
    WHERE run_id IN (SELECT unnest($1))
"""


def run_exists(conn, store, run_id: str) -> bool:
    """Whether a run with this id exists."""
    return conn.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone() is not None


def _inputs(conn, run_ids: list[str]) -> dict[str, list[DatasetInput]]:
    inputs: dict[str, list[DatasetInput]] = defaultdict(list)
    for row in conn.execute(
        "SELECT i.run_id, d.name, d.digest, d.source_type, d.source, d.schema, d.profile, "
        "i.context FROM inputs i JOIN datasets d ON d.name = i.dataset_name AND "
        "d.digest = i.dataset_digest WHERE i.run_id IN (SELECT unnest(?))",
        [run_ids],
    ).fetchall():
        inputs[row[0]].append(DatasetInput(Dataset(*row[1:7]), row[7]))
    return inputs


def _build_runs(conn, store, rows: list[tuple]) -> list[Run]:
    """Turn run rows (in ``_RUN_COLUMNS`` order) into ``Run`` entities with their values."""
    if not rows:
        return []
    ids = [r[0] for r in rows]
    values: list[dict[str, dict]] = [defaultdict(dict) for _ in range(3)]
    with_inputs = set()
    for run_id, kind, key, value, number in conn.execute(_VALUES, [ids]).fetchall():
        if kind == 3:
            with_inputs.add(run_id)
        else:
            values[kind][run_id][key] = number if kind == 2 else value
    inputs = _inputs(conn, list(with_inputs)) if with_inputs else {}
    params, tags, metrics = values
    root = store.root
    runs = []
    for r in rows:
        run_id = r[0]
        info = RunInfo(
            run_id=run_id, experiment_id=r[1], run_name=r[2], user_id=r[3], status=r[4],
            start_time=r[5], end_time=r[6], lifecycle_stage=r[7],
            artifact_uri=str(root / r[8]) if r[8] else "", parent_run_id=r[9],
            description=r[10],
        )
        source = RunSource(
            type=r[11], name=r[12], code=r[13], git_commit=r[14], git_branch=r[15],
            git_dirty=r[16], git_diff=r[17], host=r[18], python_version=r[19], platform=r[20],
            env_hash=r[21],
        )
        data = RunData(metrics=metrics[run_id], params=params[run_id], tags=tags[run_id])
        runs.append(Run(info, data, RunInputs(inputs.get(run_id, [])), source))
    return runs


def load_runs(conn, store, run_ids: list[str]) -> list[Run]:
    """The runs with these ids, in the given order (unknown ids are skipped)."""
    if not run_ids:
        return []
    found = {
        row[0]: row
        for row in conn.execute(
            f"SELECT {_RUN_SELECT} FROM runs r WHERE r.run_id IN (SELECT unnest(?))", [run_ids]
        ).fetchall()
    }
    return _build_runs(conn, store, [found[r] for r in run_ids if r in found])


def params_of(conn, store, run_id: str) -> dict[str, str]:
    """A run's params."""
    rows = conn.execute("SELECT key, value FROM params WHERE run_id = ?", [run_id]).fetchall()
    return dict(rows)


def metric_history(conn, store, run_id: str, key: str) -> MetricHistory:
    """Every value of a metric, by step then timestamp."""
    columns = conn.execute(
        'SELECT value, step, "timestamp" FROM metrics WHERE run_id = ? AND key = ? '
        'ORDER BY step, "timestamp"',
        [run_id, key],
    ).fetchnumpy()
    return MetricHistory(key, columns["value"], columns["step"], columns["timestamp"])


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


def _search_sql(columns: str, experiment_ids, filter_string, view_type, order_by):
    plan = plan_search(parse_filter(filter_string), parse_order_by(order_by))
    sql = (
        f"SELECT {columns} FROM runs r {' '.join(plan.joins)} "
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
    # ids first: carrying every run column through the sort costs more than a second lookup
    sql, params = _search_sql("r.run_id", experiment_ids, filter_string, view_type, order_by)
    ids = [row[0] for row in conn.execute(sql, [*params, limit + 1, offset]).fetchall()]
    token = _encode_token(offset + limit) if len(ids) > limit else None
    return load_runs(conn, store, ids[:limit]), token


_FRAME_COLUMNS = (
    "r.run_id, r.experiment_id, r.status, r.artifact_uri, r.start_time, r.end_time, "
    "r.run_name, r.user_id, r.parent_run_id"
)
_PIVOTS = (
    ("metrics.", "latest_metrics"),
    ("params.", "params"),
    ("tags.", "tags"),
)


def search_runs_frame(conn, store, experiment_ids, filter_string, view_type, max_results,
                      order_by):
    """The matching runs as a DataFrame: MLflow's columns, then metrics.*, params.*, tags.*."""
    import pandas as pd

    limit = _check_max_results(max_results)
    sql, params = _search_sql(_FRAME_COLUMNS, experiment_ids, filter_string, view_type,
                              order_by)
    page = conn.execute(sql, [*params, limit, 0]).to_arrow_table()
    frame = page.to_pandas()
    root = str(store.root)
    frame["artifact_uri"] = [f"{root}/{p}" if p else p for p in frame["artifact_uri"]]
    for col in ("start_time", "end_time"):
        frame[col] = pd.to_datetime(frame[col], unit="ms", utc=True)
    if not len(frame):
        return frame
    conn.register("_nb_page", page.select(["run_id"]))
    try:
        for prefix, table in _PIVOTS:
            pivot = conn.execute(
                # prefix and table come from _PIVOTS above, never from user input
                f"PIVOT (SELECT k.run_id, '{prefix}' || k.key AS name, k.value FROM {table} k "
                "SEMI JOIN _nb_page p ON p.run_id = k.run_id) "
                "ON name USING first(value) GROUP BY run_id"
            ).to_arrow_table()
            if pivot.num_columns > 1:
                frame = frame.join(pivot.to_pandas().set_index("run_id"), on="run_id")
    finally:
        conn.unregister("_nb_page")
    return frame


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
