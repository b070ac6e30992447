"""Copying runs in from another tracker on ``Client``: runs that keep their id and history.

``nbtrack import-mlflow`` uses these; everything else about an imported run (params, metrics
with their steps and times, tags, artifacts, status) goes through the ordinary methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbtrack.clock import now_ms
from nbtrack.entities import RunSource
from nbtrack.exceptions import NotFoundError
from nbtrack.store.base import NewRun
from nbtrack.tracking.names import check_text

if TYPE_CHECKING:
    from nbtrack.store.registry_base import Backend


class ImportClientMixin:
    """Record runs as another tracker recorded them."""

    _store: Backend

    def import_run(self, run_id: str, experiment_id: str, run_name: str, start_time: int,
                   user_id: str | None = None, parent_run_id: str | None = None,
                   description: str | None = None, source: RunSource | None = None,
                   known_new: bool = False) -> bool:
        """Record a RUNNING run copied from another tracker, keeping its id and start time.

        Nothing of this process (host, git, environment) is captured and no process owns the
        run, so it is never marked KILLED. Log its values with the usual methods, then end it
        with ``set_terminated``. Returns False, changing nothing, if the run id exists already;
        ``known_new=True`` skips that check (a read of the store) when the caller has listed
        the store's runs once for many imports.
        """
        if not known_new:
            try:
                self._store.get_run(run_id)
                return False
            except NotFoundError:
                pass
        self._store.create_run(NewRun(
            run_id=check_text(run_id, "run id"), experiment_id=str(experiment_id),
            run_name=check_text(str(run_name), "run name"), user_id=user_id,
            start_time=int(start_time), parent_run_id=parent_run_id,
            description=None if description is None
            else check_text(description, "run description"),
            source=source or RunSource(), pid=None,
        ))
        return True

    def log_input_record(self, run_id: str, dataset: dict, context: str | None = None) -> None:
        """Record a dataset a run used from its description, as another tracker recorded it.

        ``dataset`` has ``name``, ``digest``, ``source_type``, ``source``, ``schema`` and
        ``profile`` (the last two JSON text or None), as ``log_input`` records them.
        """
        self._store.ensure_run(run_id)
        for field in ("name", "digest", "source_type", "source", "schema", "profile"):
            text = dataset.get(field)
            if isinstance(text, str):
                check_text(text, f"dataset {field}")
        self._store.add_input(run_id, dict(dataset), context)

    def import_environment(self, env_hash: str, environment: dict) -> None:
        """Record an environment as another store described it (``get_environment``'s shape).

        ``environment`` has ``python_version``, ``platform`` and ``packages`` (``{name:
        version}``); it is kept under ``env_hash`` unless one is kept there already.
        """
        packages = environment.get("packages") or {}
        self._store.add_environment(env_hash, {
            "python_version": environment.get("python_version"),
            "platform": environment.get("platform"),
            "packages": [{"name": n, "version": v} for n, v in packages.items()],
            "time": now_ms(),
        })

    def import_registry_events(self, events: list[dict]) -> None:
        """Append audit log entries as another store recorded them, keeping times and users.

        Each has ``get_registry_events``' columns: ``timestamp``, ``user_id``, ``action``,
        ``name``, ``version``, ``field``, ``from_value``, ``to_value``, ``comment``.
        """
        for event in events:
            for field in ("user_id", "action", "name", "field", "from_value", "to_value",
                          "comment"):
                if isinstance(event.get(field), str):
                    check_text(event[field], f"registry event {field}")
        if events:
            self._store.append_registry_events(events)
