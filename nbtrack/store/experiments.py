"""Experiments in the embedded store: written at once (never buffered), read directly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbtrack.clock import now_ms
from nbtrack.entities import Experiment, LifecycleStage
from nbtrack.exceptions import AlreadyExistsError, InvalidValueError, NotFoundError

if TYPE_CHECKING:
    from pathlib import Path

    from nbtrack.store.connection import ConnectionManager

ARTIFACTS_DIR = "artifacts"



class ExperimentsMixin:
    """The experiment operations of ``DuckDBStore`` (its ``_connection``, ``artifact_root``)."""

    _connection: ConnectionManager
    root: Path
    artifact_root: Path

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict | None = None,
        exist_ok: bool = False,
    ) -> str:
        """Create an experiment; its id is the next integer, as text.

        With ``exist_ok``, an active experiment of that name is returned instead: the check
        and the creation share one locked transaction, so processes racing to create the same
        experiment all get it.
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidValueError("An experiment needs a non-empty name, such as 'nyc-taxi'.")
        now = now_ms()
        with self._connection.transaction() as conn:
            existing = conn.execute(
                "SELECT experiment_id, lifecycle_stage FROM experiments WHERE name = ?", [name]
            ).fetchone()
            if existing and exist_ok and existing[1] == LifecycleStage.ACTIVE:
                return existing[0]
            if existing:
                hint = (
                    " It is deleted: restore it with Client().restore_experiment"
                    f"({existing[0]!r}) or choose another name."
                    if existing[1] == LifecycleStage.DELETED
                    else " Use set_experiment(name) to reuse it."
                )
                raise AlreadyExistsError(f"Experiment(name={name}) already exists.{hint}")
            (next_id,) = conn.execute(
                "SELECT coalesce(max(CAST(experiment_id AS BIGINT)), -1) + 1 FROM experiments"
            ).fetchone()
            experiment_id = str(next_id)
            conn.execute(
                "INSERT INTO experiments VALUES (?, ?, ?, 'active', ?, ?)",
                [experiment_id, name, artifact_location or ARTIFACTS_DIR, now, now],
            )
            for key, value in (tags or {}).items():
                conn.execute(
                    "INSERT INTO experiment_tags VALUES (?, ?, ?)", [experiment_id, key, str(value)]
                )
        return experiment_id

    def _experiments(self, where: str, params: list, wait: float | None = None
                     ) -> list[Experiment]:
        # experiments are written at once, never buffered: no flush needed before reading
        with self._connection.use(wait) as conn:
            rows = conn.execute(
                "SELECT e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, "
                "e.creation_time, e.last_update_time, "
                "(SELECT list(struct_pack(k := key, v := value)) FROM experiment_tags t "
                " WHERE t.experiment_id = e.experiment_id) "
                f"FROM experiments e {where}",
                params,
            ).fetchall()
        return [
            Experiment(
                experiment_id=r[0],
                name=r[1],
                artifact_location=str(self.artifact_root.parent / r[2]),
                lifecycle_stage=r[3],
                creation_time=r[4],
                last_update_time=r[5],
                tags={t["k"]: t["v"] for t in (r[6] or [])},
            )
            for r in rows
        ]

    def get_experiment(self, experiment_id: str, wait: float | None = None) -> Experiment:
        """Return an experiment by id.

        A busy store is waited for up to ``wait`` seconds (default: the lock timeout), then
        StoreBusyError is raised.
        """
        found = self._experiments("WHERE experiment_id = ?", [str(experiment_id)], wait)
        if not found:
            raise NotFoundError(
                f"No Experiment with id={experiment_id} exists in the store {self.root}. "
                "List them with nbtrack.search_experiments() or `nbtrack experiments`."
            )
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """Return an experiment by name, or None."""
        found = self._experiments("WHERE name = ?", [name])
        return found[0] if found else None

    def search_experiments(
        self, view_type: int, max_results: int | None, filter_string: str | None = None,
        order_by: list[str] | None = None,
    ) -> list[Experiment]:
        """Experiments in a lifecycle view matching a filter, by id unless ``order_by`` says."""
        from nbtrack.entities import ViewType
        from nbtrack.search.parser import EXPERIMENTS, parse_filter, parse_order_by
        from nbtrack.store.search_sql import experiment_order, experiment_where

        params: list[Any] = [list(ViewType.stages(view_type))]
        condition = experiment_where(parse_filter(filter_string, EXPERIMENTS), params)
        order = experiment_order(parse_order_by(order_by, EXPERIMENTS))
        where = f"WHERE list_contains(?, e.lifecycle_stage) AND {condition} ORDER BY {order}"
        if max_results is not None:
            where += " LIMIT ?"
            params.append(int(max_results))
        return self._experiments(where, params)

    def set_experiment_lifecycle(self, experiment_id: str, stage: str) -> None:
        """Move an experiment to ``active`` or ``deleted``."""
        self.get_experiment(experiment_id)
        with self._connection.transaction() as conn:
            conn.execute(
                "UPDATE experiments SET lifecycle_stage = ?, last_update_time = ? "
                "WHERE experiment_id = ?",
                [stage, now_ms(), str(experiment_id)],
            )

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Rename an experiment; the new name must be unused."""
        self.get_experiment(experiment_id)
        if self.get_experiment_by_name(new_name) is not None:
            raise AlreadyExistsError(f"Experiment(name={new_name}) already exists; pick another "
                                     "name.")
        with self._connection.transaction() as conn:
            conn.execute(
                "UPDATE experiments SET name = ?, last_update_time = ? WHERE experiment_id = ?",
                [new_name, now_ms(), str(experiment_id)],
            )

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set (or replace) a tag on an experiment."""
        self.get_experiment(experiment_id)
        with self._connection.transaction() as conn:
            conn.execute(
                "DELETE FROM experiment_tags WHERE experiment_id = ? AND key = ?",
                [str(experiment_id), key],
            )
            conn.execute(
                "INSERT INTO experiment_tags VALUES (?, ?, ?)", [str(experiment_id), key, value]
            )

