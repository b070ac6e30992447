"""The model registry in the embedded store: models, versions, stages, aliases, tags, history.

Every change is written at once, in one locked transaction together with its entry in
``registry_events`` (who, when, what, from, to): the audit log can never miss a change, and
two processes registering the same name never get the same version number, because the next
number is read and written while the store's file lock is held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbtrack.capture import system
from nbtrack.clock import now_ms
from nbtrack.entities import ModelVersion, RegisteredModel, check_stage
from nbtrack.exceptions import AlreadyExistsError, InvalidValueError, NotFoundError
from nbtrack.search.parser import ATTRIBUTE, TAG, Vocabulary, parse_filter, parse_order_by
from nbtrack.store.search_sql import entity_order, entity_where

if TYPE_CHECKING:
    from nbtrack.store.connection import ConnectionManager

#: what registry searches may name, as in MLflow
MODEL_FIELDS = Vocabulary((TAG, ATTRIBUTE), ("name", "description"),
                          ("creation_timestamp", "last_updated_timestamp"))
VERSION_FIELDS = Vocabulary((TAG, ATTRIBUTE),
                            ("name", "run_id", "source", "source_path", "current_stage",
                             "description", "user_id"),
                            ("version_number", "creation_timestamp", "last_updated_timestamp"))

_VERSION_COLUMNS = {
    "name": "v.name", "run_id": "v.run_id", "source": "v.source", "source_path": "v.source",
    "current_stage": "v.stage", "description": "v.description", "user_id": "v.user_id",
    "version_number": "v.version", "creation_timestamp": "v.creation_time",
    "last_updated_timestamp": "v.last_updated_time",
}
_MODEL_COLUMNS = {
    "name": "m.name", "description": "m.description", "creation_timestamp": "m.creation_time",
    "last_updated_timestamp": "m.last_updated_time",
}
_VERSION_SELECT = """
SELECT v.name, v.version, v.source, v.run_id, v.stage, v.description, v.user_id, v.status,
       v.creation_time, v.last_updated_time,
       (SELECT list(struct_pack(k := t.key, v := t.value)) FROM model_version_tags t
        WHERE t.name = v.name AND t.version = v.version),
       (SELECT list(a.alias ORDER BY a.alias) FROM model_aliases a
        WHERE a.name = v.name AND a.version = v.version)
FROM model_versions v
"""


def check_alias(alias) -> None:
    """Refuse an alias that is empty or that a ``models:/`` URI reads otherwise (latest, v3)."""
    reserved = alias.lower() == "latest" or (alias[:1] in "vV" and alias[1:].isdigit()) \
        if isinstance(alias, str) else True
    if reserved or not alias.strip():
        raise InvalidValueError(f"{alias!r} cannot be an alias: use a name such as "
                                "'champion' (not 'latest' or 'v3').")


def _version(row) -> ModelVersion:
    return ModelVersion(
        name=row[0], version=int(row[1]), source=row[2], run_id=row[3], current_stage=row[4],
        description=row[5], user_id=row[6], status=row[7], creation_timestamp=row[8],
        last_updated_timestamp=row[9], tags={t["k"]: t["v"] for t in row[10] or []},
        aliases=list(row[11] or []))


def _number(version) -> int:
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise InvalidValueError(f"A model version is a whole number such as 3, not "
                                f"{version!r}.") from None
    if number < 1:
        raise InvalidValueError(f"Model versions start at 1; {number} is not one.")
    return number


class RegistryMixin:
    """The registry operations of ``DuckDBStore`` (uses its ``_connection``)."""

    _connection: ConnectionManager

    # the audit log ---------------------------------------------------------------------------
    @staticmethod
    def _event(conn, action: str, name: str, version: int | None = None, field: str | None = None,
               from_value=None, to_value=None, comment: str | None = None) -> None:
        conn.execute(
            "INSERT INTO registry_events SELECT coalesce(max(event_id), 0) + 1, ?, ?, ?, ?, ?, ?, "
            "?, ?, ? FROM registry_events",
            [now_ms(), system.user(), action, name, version, field,
             None if from_value is None else str(from_value),
             None if to_value is None else str(to_value), comment])

    def record_registry_event(self, action: str, name: str, version=None, comment: str = "",
                              field: str | None = None, from_value=None, to_value=None) -> None:
        """Append an entry to the audit log (used for decisions such as a refused promotion)."""
        with self._connection.transaction() as conn:
            self._event(conn, action, name, None if version is None else _number(version),
                        field, from_value, to_value, comment)

    def append_registry_events(self, events: list[dict]) -> None:
        """Append entries to the audit log as another store recorded them (times, users kept)."""
        with self._connection.transaction() as conn:
            for event in events:
                conn.execute(
                    "INSERT INTO registry_events SELECT coalesce(max(event_id), 0) + 1, ?, ?, ?, "
                    "?, ?, ?, ?, ?, ? FROM registry_events",
                    [int(event["timestamp"]), event.get("user_id"), event["action"],
                     event["name"], event.get("version"), event.get("field"),
                     event.get("from_value"), event.get("to_value"), event.get("comment")])

    def registry_events(self, name: str | None = None):
        """The audit log, oldest first, as a DataFrame (one model's, or all of it)."""
        with self._connection.use() as conn:
            where, params = ("WHERE name = ?", [name]) if name else ("", [])
            return conn.execute(
                f"SELECT * FROM registry_events {where} ORDER BY event_id", params).df()

    # registered models ---------------------------------------------------------------------
    def _require_model(self, conn, name: str) -> None:
        if not conn.execute("SELECT 1 FROM registered_models WHERE name = ?", [name]).fetchone():
            raise NotFoundError(f"Registered Model with name={name} not found. List the "
                                "models with Client().search_registered_models().")

    def create_registered_model(self, name: str, description: str | None = None,
                                tags: dict | None = None, exist_ok: bool = False) -> None:
        """Create a registered model (an error if the name is taken, unless ``exist_ok``)."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidValueError("A registered model needs a non-empty name.")
        now = now_ms()
        with self._connection.transaction() as conn:
            if conn.execute("SELECT 1 FROM registered_models WHERE name = ?", [name]).fetchone():
                if exist_ok:
                    return
                raise AlreadyExistsError(f"Registered Model (name={name}) already exists. "
                                         "Register new versions with register_model().")
            conn.execute("INSERT INTO registered_models VALUES (?, ?, ?, ?)",
                         [name, description, now, now])
            for key, value in (tags or {}).items():
                conn.execute("INSERT INTO registered_model_tags VALUES (?, ?, ?)",
                             [name, key, str(value)])
            self._event(conn, "create_model", name, comment=description)

    def get_registered_model(self, name: str) -> RegisteredModel:
        """A registered model with its tags, aliases and latest version per stage."""
        found = self._models_where("m.name = ?", [name], None)
        if not found:
            raise NotFoundError(f"Registered Model with name={name} not found. List the "
                                "models with Client().search_registered_models().")
        return found[0]

    def search_registered_models(self, filter_string: str | None, max_results: int | None,
                                 order_by: list[str] | None) -> list[RegisteredModel]:
        """Registered models matching a filter such as ``name LIKE '%taxi%'``."""
        params: list = []
        where = entity_where(parse_filter(filter_string, MODEL_FIELDS), params, _MODEL_COLUMNS,
                             "EXISTS (SELECT 1 FROM registered_model_tags t "
                             "WHERE t.name = m.name AND t.key = ?")
        order = entity_order(parse_order_by(order_by, MODEL_FIELDS), _MODEL_COLUMNS, "m.name")
        return self._models_where(where, params, max_results, order)

    def _models_where(self, where: str, params: list, limit: int | None,
                      order: str = "m.name") -> list[RegisteredModel]:
        with self._connection.use() as conn:
            sql = (
                "SELECT m.name, m.description, m.creation_time, m.last_updated_time, "
                "(SELECT list(struct_pack(k := t.key, v := t.value)) FROM registered_model_tags t"
                " WHERE t.name = m.name), "
                "(SELECT list(struct_pack(a := a.alias, v := a.version)) FROM model_aliases a "
                " WHERE a.name = m.name) "
                f"FROM registered_models m WHERE {where} ORDER BY {order}"
            )
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            rows = conn.execute(sql, params).fetchall()
            models = []
            for row in rows:
                latest = [_version(v) for v in conn.execute(
                    _VERSION_SELECT + " WHERE v.name = ? AND v.version = (SELECT max(w.version) "
                    "FROM model_versions w WHERE w.name = v.name AND w.stage = v.stage) "
                    "ORDER BY v.version", [row[0]]).fetchall()]
                models.append(RegisteredModel(
                    name=row[0], description=row[1], creation_timestamp=row[2],
                    last_updated_timestamp=row[3], tags={t["k"]: t["v"] for t in row[4] or []},
                    aliases={a["a"]: int(a["v"]) for a in row[5] or []}, latest_versions=latest))
        return models

    def rename_registered_model(self, name: str, new_name: str) -> None:
        """Rename a model and everything that refers to it."""
        with self._connection.transaction() as conn:
            self._require_model(conn, name)
            if conn.execute("SELECT 1 FROM registered_models WHERE name = ?",
                            [new_name]).fetchone():
                raise AlreadyExistsError(f"Registered Model (name={new_name}) already exists.")
            for table in ("registered_models", "registered_model_tags", "model_versions",
                          "model_version_tags", "model_aliases"):
                conn.execute(f"UPDATE {table} SET name = ? WHERE name = ?", [new_name, name])
            conn.execute("UPDATE registered_models SET last_updated_time = ? WHERE name = ?",
                         [now_ms(), new_name])
            self._event(conn, "rename_model", new_name, field="name", from_value=name,
                        to_value=new_name)

    def update_registered_model(self, name: str, description: str | None) -> None:
        """Change a model's description."""
        with self._connection.transaction() as conn:
            self._require_model(conn, name)
            (old,) = conn.execute("SELECT description FROM registered_models WHERE name = ?",
                                  [name]).fetchone()
            conn.execute("UPDATE registered_models SET description = ?, last_updated_time = ? "
                         "WHERE name = ?", [description, now_ms(), name])
            self._event(conn, "update_model", name, field="description", from_value=old,
                        to_value=description)

    def delete_registered_model(self, name: str) -> None:
        """Delete a model with all its versions, tags and aliases (the audit log keeps them)."""
        with self._connection.transaction() as conn:
            self._require_model(conn, name)
            for table in ("model_aliases", "model_version_tags", "model_versions",
                          "registered_model_tags", "registered_models"):
                conn.execute(f"DELETE FROM {table} WHERE name = ?", [name])
            self._event(conn, "delete_model", name)

    def set_registered_model_tag(self, name: str, key: str, value: str | None) -> None:
        """Set (or, with ``None``, delete) a tag on a registered model."""
        with self._connection.transaction() as conn:
            self._require_model(conn, name)
            old = conn.execute("SELECT value FROM registered_model_tags WHERE name = ? AND "
                               "key = ?", [name, key]).fetchone()
            conn.execute("DELETE FROM registered_model_tags WHERE name = ? AND key = ?",
                         [name, key])
            if value is not None:
                conn.execute("INSERT INTO registered_model_tags VALUES (?, ?, ?)",
                             [name, key, str(value)])
            self._event(conn, "set_model_tag" if value is not None else "delete_model_tag",
                        name, field=f"tags.{key}", from_value=old[0] if old else None,
                        to_value=value)

    # versions ------------------------------------------------------------------------------
    def _versions(self, conn, where: str, params: list, order: str = "v.name, v.version",
                  limit: int | None = None) -> list[ModelVersion]:
        sql = f"{_VERSION_SELECT} WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_version(r) for r in conn.execute(sql, params).fetchall()]

    def _require_version(self, conn, name: str, version) -> int:
        number = _number(version)
        if not conn.execute("SELECT 1 FROM model_versions WHERE name = ? AND version = ?",
                            [name, number]).fetchone():
            self._require_model(conn, name)
            raise NotFoundError(f"Model Version (name={name}, version={number}) not found. See its "
                                f"versions with Client().search_model_versions(\"name = "
                                f"'{name}'\").")
        return number

    def create_model_version(self, name: str, source: str, run_id: str | None,
                             description: str | None = None,
                             tags: dict | None = None) -> ModelVersion:
        """Add the next version of ``name`` (created if new), numbered under the file lock."""
        now = now_ms()
        with self._connection.transaction() as conn:
            if not conn.execute("SELECT 1 FROM registered_models WHERE name = ?",
                                [name]).fetchone():
                conn.execute("INSERT INTO registered_models VALUES (?, NULL, ?, ?)",
                             [name, now, now])
                self._event(conn, "create_model", name)
            (number,) = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM model_versions "
                                     "WHERE name = ?", [name]).fetchone()
            conn.execute(
                "INSERT INTO model_versions VALUES (?, ?, ?, ?, 'None', ?, ?, 'READY', ?, ?)",
                [name, number, source, run_id, description, system.user(), now, now])
            for key, value in (tags or {}).items():
                conn.execute("INSERT INTO model_version_tags VALUES (?, ?, ?, ?)",
                             [name, number, key, str(value)])
            conn.execute("UPDATE registered_models SET last_updated_time = ? WHERE name = ?",
                         [now, name])
            self._event(conn, "create_version", name, number, "source", None, source,
                        comment=f"run {run_id}" if run_id else None)
            return self._versions(conn, "v.name = ? AND v.version = ?", [name, number])[0]

    def get_model_version(self, name: str, version) -> ModelVersion:
        """One version, with its tags and aliases."""
        with self._connection.use() as conn:
            number = self._require_version(conn, name, version)
            return self._versions(conn, "v.name = ? AND v.version = ?", [name, number])[0]

    def search_model_versions(self, filter_string: str | None, max_results: int | None,
                              order_by: list[str] | None) -> list[ModelVersion]:
        """Versions matching a filter such as ``name = 'taxi' AND tags.team = 'ml'``."""
        params: list = []
        where = entity_where(parse_filter(filter_string, VERSION_FIELDS), params,
                             _VERSION_COLUMNS,
                             "EXISTS (SELECT 1 FROM model_version_tags t WHERE t.name = v.name "
                             "AND t.version = v.version AND t.key = ?")
        order = entity_order(parse_order_by(order_by, VERSION_FIELDS), _VERSION_COLUMNS,
                             "v.name, v.version DESC")
        with self._connection.use() as conn:
            return self._versions(conn, where, params, order, max_results)

    def update_model_version(self, name: str, version, description: str | None) -> None:
        """Change a version's description."""
        with self._connection.transaction() as conn:
            number = self._require_version(conn, name, version)
            (old,) = conn.execute("SELECT description FROM model_versions WHERE name = ? AND "
                                  "version = ?", [name, number]).fetchone()
            conn.execute("UPDATE model_versions SET description = ?, last_updated_time = ? "
                         "WHERE name = ? AND version = ?", [description, now_ms(), name, number])
            self._event(conn, "update_version", name, number, "description", old, description)

    def delete_model_version(self, name: str, version) -> None:
        """Delete one version, its tags and the aliases pointing at it."""
        with self._connection.transaction() as conn:
            number = self._require_version(conn, name, version)
            for table in ("model_aliases", "model_version_tags", "model_versions"):
                conn.execute(f"DELETE FROM {table} WHERE name = ? AND version = ?",
                             [name, number])
            self._event(conn, "delete_version", name, number)

    def set_model_version_tag(self, name: str, version, key: str, value: str | None) -> None:
        """Set (or, with ``None``, delete) a tag on a version."""
        with self._connection.transaction() as conn:
            number = self._require_version(conn, name, version)
            old = conn.execute("SELECT value FROM model_version_tags WHERE name = ? AND "
                               "version = ? AND key = ?", [name, number, key]).fetchone()
            conn.execute("DELETE FROM model_version_tags WHERE name = ? AND version = ? AND "
                         "key = ?", [name, number, key])
            if value is not None:
                conn.execute("INSERT INTO model_version_tags VALUES (?, ?, ?, ?)",
                             [name, number, key, str(value)])
            self._event(conn, "set_version_tag" if value is not None else "delete_version_tag",
                        name, number, f"tags.{key}", old[0] if old else None, value)

    def transition_model_version_stage(self, name: str, version, stage: str,
                                       archive_existing_versions: bool = False,
                                       comment: str | None = None) -> ModelVersion:
        """Move a version to a stage; optionally archive the others in that stage."""
        stage = check_stage(stage)
        now = now_ms()
        with self._connection.transaction() as conn:
            number = self._require_version(conn, name, version)
            (old,) = conn.execute("SELECT stage FROM model_versions WHERE name = ? AND "
                                  "version = ?", [name, number]).fetchone()
            if archive_existing_versions and stage in ("Staging", "Production"):
                for (other,) in conn.execute(
                        "SELECT version FROM model_versions WHERE name = ? AND stage = ? AND "
                        "version <> ? ORDER BY version", [name, stage, number]).fetchall():
                    conn.execute("UPDATE model_versions SET stage = 'Archived', "
                                 "last_updated_time = ? WHERE name = ? AND version = ?",
                                 [now, name, other])
                    self._event(conn, "transition_stage", name, other, "stage", stage,
                                "Archived", comment=f"archived as version {number} entered "
                                                    f"{stage}")
            conn.execute("UPDATE model_versions SET stage = ?, last_updated_time = ? "
                         "WHERE name = ? AND version = ?", [stage, now, name, number])
            self._event(conn, "transition_stage", name, number, "stage", old, stage, comment)
            return self._versions(conn, "v.name = ? AND v.version = ?", [name, number])[0]

    def set_registered_model_alias(self, name: str, alias: str, version) -> None:
        """Point ``alias`` at a version (moving it if it pointed elsewhere)."""
        check_alias(alias)
        with self._connection.transaction() as conn:
            number = self._require_version(conn, name, version)
            old = conn.execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?",
                               [name, alias]).fetchone()
            conn.execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", [name, alias])
            conn.execute("INSERT INTO model_aliases VALUES (?, ?, ?)", [name, alias, number])
            self._event(conn, "set_alias", name, number, f"aliases.{alias}",
                        old[0] if old else None, number)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        """Remove an alias."""
        with self._connection.transaction() as conn:
            old = conn.execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?",
                               [name, alias]).fetchone()
            if old is None:
                self._require_model(conn, name)
                raise NotFoundError(f"Registered model {name!r} has no alias {alias!r}.")
            conn.execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", [name, alias])
            self._event(conn, "delete_alias", name, old[0], f"aliases.{alias}", old[0], None)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version an alias points at."""
        with self._connection.use() as conn:
            found = self._versions(conn, "v.name = ? AND v.version = (SELECT a.version FROM "
                                         "model_aliases a WHERE a.name = ? AND a.alias = ?)",
                                   [name, name, alias])
            if not found:
                self._require_model(conn, name)
                raise NotFoundError(f"Registered model {name!r} has no alias {alias!r}.")
            return found[0]

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list:
        """The newest version in each stage (or in each of ``stages``)."""
        wanted = [check_stage(s) for s in stages] if stages else None
        with self._connection.use() as conn:
            self._require_model(conn, name)
            latest = self._versions(
                conn, "v.name = ? AND v.version = (SELECT max(w.version) FROM model_versions w "
                      "WHERE w.name = v.name AND w.stage = v.stage)", [name])
        return [v for v in latest if wanted is None or v.current_stage in wanted]
