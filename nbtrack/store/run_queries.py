"""Read runs out of the DuckDB store: single runs, searches, histories and read-only SQL.

Every function takes an open connection and the store (for paths); none of them writes.
"""

from __future__ import annotations

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
    system_tags,
)
from nbtrack.exceptions import InvalidValueError
from nbtrack.search.paging import check_max_results, decode_token, encode_token
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
_SYSTEM_COLUMNS = tuple(system_tags.COLUMNS.values())
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
    for column_name in table.column_names:
        name = run_index.key_name(column_name)
        kind = next((k for prefix, k in _KINDS.items() if name.startswith(prefix)), None)
        column = table.column(column_name)
        if kind is None or column.null_count == len(column):
            continue
        key = name.split(".", 1)[1]
        target = values[kind]
        for run_id, value in zip(ids, column.to_pylist(), strict=True):
            if value is not None:
                target[run_id][key] = value
    return values


def _row_select(conn, store) -> str:
    """The index columns that ``_runs_from_index`` needs: all of them while it is complete."""
    return "r.*" if store.index_columns(conn)[1] else _RUN_SELECT


def load_runs(conn, store, run_ids: list[str]) -> list[Run]:
    """The runs with these ids, in the given order (unknown ids are skipped)."""
    if not run_ids:
        return []
    table = conn.execute(
        f"SELECT {_row_select(conn, store)} FROM run_index r "
        "WHERE r.run_id IN (SELECT unnest(?))", [run_ids]
    ).to_arrow_table()
    by_id = {run.info.run_id: run for run in _runs_from_index(conn, store, table)}
    return [by_id[r] for r in run_ids if r in by_id]


def _runs_from_index(conn, store, table) -> list[Run]:
    """``Run`` entities from ``run_index`` rows (as Arrow), in the table's order.

    Their values come from the rows' key columns while the index is complete (then the rows
    hold them all), else from the normalised tables.
    """
    ids = table.column("run_id").to_pylist()
    if store.index_columns(conn)[1]:
        params, tags, metrics = _values_from_index(table, ids)
    else:
        params, tags, metrics = [defaultdict(dict) for _ in range(3)]
        for run_id, kind, key, value, number in conn.execute(_VALUES, [ids]).fetchall():
            (params, tags, metrics)[kind][run_id][key] = number if kind == 2 else value
    inputs = _inputs(conn, store, ids)
    columns = table.select(list(_RUN_COLUMNS)).to_pydict()
    root = str(store.artifact_root.parent)  # artifact_uri is relative to it
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
        shown_tags = {**tags[run_id], **system_tags.from_columns(
            {c: columns[c][i] for c in _SYSTEM_COLUMNS})}
        data = RunData(metrics=metrics[run_id], params=params[run_id], tags=shown_tags)
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


def search_runs(conn, store, experiment_ids, filter_string, view_type, max_results, order_by,
                page_token):
    """A page of runs and the token for the next page (None on the last page)."""
    limit = check_max_results(max_results, allow_zero=True)
    offset = decode_token(page_token)
    sql, params = _search_sql(_row_select(conn, store), conn, store, experiment_ids,
                              filter_string, view_type, order_by)
    table = conn.execute(sql, [*params, limit + 1, offset]).to_arrow_table()
    token = encode_token(offset + limit) if len(table) > limit else None
    return _runs_from_index(conn, store, table.slice(0, limit)), token


_FRAME_COLUMNS = (
    "run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time", "run_name",
    "user_id", "parent_run_id",
)


def _key_select(indexed: dict[str, str], names) -> list[str]:
    """Select items for the index columns of ``names``, named back by ``_decode``."""
    return [f"r.{quote(indexed[n])}" for n in names if n in indexed]


def _decode(table):
    """Arrow column names from index columns back to key names (``metrics.^Loss`` -> ``Loss``)."""
    return table.rename_columns([run_index.key_name(n) if n.startswith(tuple(run_index.KINDS))
                                 else n for n in table.column_names])


def search_runs_frame(conn, store, experiment_ids, filter_string, view_type, max_results,
                      order_by):
    """The matching runs as a DataFrame: MLflow's columns, then metrics.*, params.*, tags.*.

    Key columns that no matching run has are left out, as MLflow does.
    """
    import pandas as pd

    limit = check_max_results(max_results, allow_zero=True)
    indexed, complete = store.index_columns(conn)
    system = {tag: column for tag, column in system_tags.COLUMNS.items()
              if column not in _FRAME_COLUMNS}
    columns = ", ".join([f"r.{c}" for c in _FRAME_COLUMNS]
                        + [f"r.{c}" for c in system.values()]
                        + _key_select(indexed, sorted(indexed)))
    sql, params = _search_sql(columns, conn, store, experiment_ids, filter_string, view_type,
                              order_by)
    table = _decode(conn.execute(sql, [*params, limit, 0]).to_arrow_table())
    if not complete:
        table = _add_unindexed_keys(conn, table)
    table = _system_tag_columns(table)
    rows = len(table)
    kept = [n for n in sorted(set(table.column_names) - set(_FRAME_COLUMNS))
            if rows and table.column(n).null_count < rows]
    frame = table.select([*_FRAME_COLUMNS, *kept]).to_pandas()
    root = str(store.artifact_root.parent)  # artifact_uri is relative to it
    frame["artifact_uri"] = [f"{root}/{p}" if p else p for p in frame["artifact_uri"]]
    for col in ("start_time", "end_time"):
        frame[col] = pd.to_datetime(frame[col], unit="ms", utc=True)
    return frame


def _system_tag_columns(table):
    """Add ``tags.mlflow.runName`` and the other system tags as columns, from the run columns.

    The run columns that the frame does not show (``description``, ``source_*``,
    ``git_commit``) are dropped after.
    """
    import pyarrow.compute as pc

    for tag, column in system_tags.COLUMNS.items():
        name = "tags." + tag
        values = pc.if_else(pc.equal(table.column(column), ""), None, table.column(column))
        if name in table.column_names:  # written as a tag by an older nbtrack
            values = pc.coalesce(values, table.column(name))
            table = table.drop_columns([name])
        table = table.append_column(name, values)
    extra = [c for c in system_tags.COLUMNS.values() if c not in _FRAME_COLUMNS]
    return table.drop_columns(extra)


TABLE_COLUMNS = ("run_id", "run_name", "status", "start_time", "end_time", "parent_run_id",
                 "experiment_id")


def search_runs_arrow(conn, store, experiment_ids, filter_string, view_type, max_results,
                      order_by, keys):
    """``(table, total)``: at most ``max_results`` matching runs, and how many match in all.

    The table has ``TABLE_COLUMNS`` and the asked-for key columns (``metrics.rmse``; all null
    where no run has it).
    """
    import pyarrow as pa

    limit = check_max_results(max_results, allow_zero=True)
    indexed, complete = store.index_columns(conn)
    keys = list(dict.fromkeys(keys))
    columns = ", ".join([f"r.{c}" for c in TABLE_COLUMNS] + _key_select(indexed, keys))
    sql, params = _search_sql(columns + ", count(*) OVER () AS _total", conn, store,
                              experiment_ids, filter_string, view_type, order_by)
    table = _decode(conn.execute(sql, [*params, limit, 0]).to_arrow_table())
    total = table.column("_total")[0].as_py() if len(table) else 0
    table = table.drop_columns(["_total"])
    if not complete and len(table):
        table = _add_unindexed_keys(conn, table, [k for k in keys if k not in indexed])
    for key in keys:
        if key not in table.column_names:
            kind = pa.float64() if key.startswith("metrics.") else pa.string()
            table = table.append_column(key, pa.nulls(len(table), kind))
    return table.select([*TABLE_COLUMNS, *keys]), total


_KEY_COUNTS = """
SELECT kind, key, count(*) AS n FROM (
    SELECT 0 AS kind, run_id, key FROM latest_metrics
    UNION ALL SELECT 1, run_id, key FROM params
    UNION ALL SELECT 2, run_id, key FROM tags
) v SEMI JOIN runs r ON r.run_id = v.run_id AND list_contains(?, r.experiment_id)
    AND list_contains(?, r.lifecycle_stage)
GROUP BY kind, key
"""


def key_counts(conn, store, experiment_ids, view_type) -> dict[str, int]:
    """``{key column: number of runs that have it}`` over the experiments' runs, most first.

    One scan of the index while it holds every key; past its cap, counted in the normalised
    tables, so that every key is there however wide the store.
    """
    indexed, complete = store.index_columns(conn)
    params = [[str(e) for e in experiment_ids], list(ViewType.stages(view_type))]
    if not complete:
        rows = conn.execute(_KEY_COUNTS, params).fetchall()
        found = {("metrics.", "params.", "tags.")[kind] + key: n for kind, key, n in rows}
    elif indexed:
        names = sorted(indexed)
        counts = ", ".join(f"count(r.{quote(indexed[n])})" for n in names)
        row = conn.execute(
            f"SELECT {counts} FROM run_index r WHERE list_contains(?, r.experiment_id) "
            "AND list_contains(?, r.lifecycle_stage)", params,
        ).fetchone()
        found = {n: c for n, c in zip(names, row, strict=True) if c}
    else:
        return {}
    return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))


def _add_unindexed_keys(conn, table, wanted: list[str] | None = None):
    """Add columns for keys the index lacks, from the normalised tables.

    ``wanted`` names the keys to add (all that the page's runs have when None). The values
    arrive long, sorted by key, and each key's run is spread into a column of the page's
    length: work in proportion to the values and the output, not their product.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    skip = [n for n in table.column_names if n.startswith(tuple(run_index.KINDS))]
    if wanted is not None and not wanted:
        return table
    page = table.select(["run_id"])
    conn.register("_nb_page", page)
    try:
        where = ("list_contains(?, name)", [wanted]) if wanted is not None else (
            "NOT list_contains(?, name)", [skip])
        long = conn.execute(
            f"SELECT name, run_id, text, number FROM ({run_index.values_query('_nb_page')}) "
            f"WHERE {where[0]} ORDER BY name", where[1]
        ).to_arrow_table()
    finally:
        conn.unregister("_nb_page")
    if not len(long):
        return table
    positions = pc.index_in(long.column("run_id"), value_set=page.column("run_id"))
    positions = positions.to_numpy(zero_copy_only=False)
    runs = pc.run_end_encode(long.column("name").combine_chunks())
    start = 0
    for name, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
        source = long.column("number" if name.startswith("metrics.") else "text")
        spread = np.full(len(page), -1)
        spread[positions[start:end]] = np.arange(start, end)
        table = table.append_column(name, source.take(pa.array(spread, mask=spread < 0)))
        start = end
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

    from nbtrack.store import sandbox

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
        if "runs_wide" in query.lower():
            _wide_view(conn)
        conn.execute("SET search_path = 'nbtrack,main'")
        try:
            return conn.execute(query, parameters or []).df()
        except duckdb.Error as exc:
            if sandbox.is_refused(exc):
                raise InvalidValueError(sandbox.refusal("nbtrack.sql", exc)) from None
            raise InvalidValueError(f"nbtrack.sql: {exc}") from None
    finally:
        conn.execute("ROLLBACK")
        conn.execute("RESET search_path")


_WIDE_BASE = ", ".join(f"r.{c}" for c in _RUN_COLUMNS if c not in ("pid", "deleted_time"))
_KEY_NAMES = """
SELECT DISTINCT 'metrics.' || key FROM main.latest_metrics
UNION SELECT DISTINCT 'params.' || key FROM main.params
UNION SELECT DISTINCT 'tags.' || key FROM main.tags
"""


def _wide_view(conn) -> None:
    """Make ``nbtrack.runs_wide`` (in the caller's transaction) a column for every key.

    Indexed keys read their index column; the others a per-run map of the normalised table.
    Columns are named by ``run_index.column_names`` over all the store's keys: ``metrics.rmse``,
    and ``metrics.^Loss`` beside ``metrics.loss`` (DuckDB names ignore case).
    """
    indexed = run_index.key_columns(conn)
    names = sorted(name for (name,) in conn.execute(_KEY_NAMES).fetchall())
    columns = run_index.column_names(names)
    items, joins = [_WIDE_BASE], {}
    for name in names:
        if name in indexed:
            items.append(f"r.{quote(indexed[name])} AS {quote(columns[name])}")
            continue
        prefix, key = name.split(".", 1)
        alias = "k_" + prefix
        joins[alias] = (
            f"LEFT JOIN (SELECT run_id, map(list(key), list(value)) AS m FROM "
            f"main.{run_index.KINDS[prefix + '.'][0]} GROUP BY run_id) {alias} "
            f"ON {alias}.run_id = r.run_id"
        )
        items.append(f"{alias}.m[{run_index.literal(key)}] AS {quote(columns[name])}")
    conn.execute(f"CREATE OR REPLACE VIEW nbtrack.runs_wide AS SELECT {', '.join(items)} "
                 f"FROM main.run_index r {' '.join(joins.values())}")
