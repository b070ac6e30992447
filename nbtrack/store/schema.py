"""The store's tables, its schema version and the forward migrations between versions.

A store records its version in ``nbtrack_meta``. Opening a store applies every migration above
its version, in order, inside one transaction; a store whose version is newer than this nbtrack
knows is refused rather than guessed at.
"""

from __future__ import annotations

SCHEMA_VERSION = 2

_V1 = """
CREATE TABLE nbtrack_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);

CREATE TABLE experiments (
    experiment_id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    artifact_location VARCHAR NOT NULL,
    lifecycle_stage VARCHAR NOT NULL DEFAULT 'active',
    creation_time BIGINT,
    last_update_time BIGINT
);
CREATE TABLE experiment_tags (experiment_id VARCHAR, key VARCHAR, value VARCHAR);

CREATE TABLE environments (
    env_hash VARCHAR PRIMARY KEY,
    python_version VARCHAR,
    platform VARCHAR,
    packages STRUCT(name VARCHAR, version VARCHAR)[],
    created_time BIGINT
);

CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    experiment_id VARCHAR NOT NULL,
    run_name VARCHAR,
    user_id VARCHAR,
    status VARCHAR NOT NULL,
    start_time BIGINT NOT NULL,
    end_time BIGINT,
    lifecycle_stage VARCHAR NOT NULL DEFAULT 'active',
    artifact_uri VARCHAR,
    parent_run_id VARCHAR,
    description VARCHAR,
    source_type VARCHAR,
    source_name VARCHAR,
    source_code VARCHAR,
    git_commit VARCHAR,
    git_branch VARCHAR,
    git_dirty BOOLEAN,
    git_diff VARCHAR,
    host VARCHAR,
    pid INTEGER,
    python_version VARCHAR,
    platform VARCHAR,
    env_hash VARCHAR,
    deleted_time BIGINT
);

CREATE TABLE run_index AS SELECT * FROM runs WHERE FALSE;

CREATE TABLE params (run_id VARCHAR NOT NULL, key VARCHAR NOT NULL, value VARCHAR NOT NULL);
CREATE TABLE tags (run_id VARCHAR NOT NULL, key VARCHAR NOT NULL, value VARCHAR NOT NULL);
CREATE TABLE metrics (
    run_id VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value DOUBLE NOT NULL,
    step BIGINT NOT NULL,
    timestamp BIGINT NOT NULL
);
CREATE TABLE latest_metrics (
    run_id VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value DOUBLE NOT NULL,
    step BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE artifacts (
    run_id VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    file_size BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL,
    logged_time BIGINT NOT NULL
);

CREATE TABLE datasets (
    digest VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    source_type VARCHAR,
    source VARCHAR,
    schema VARCHAR,
    profile VARCHAR,
    PRIMARY KEY (name, digest)
);
CREATE TABLE inputs (
    run_id VARCHAR NOT NULL,
    dataset_name VARCHAR NOT NULL,
    dataset_digest VARCHAR NOT NULL,
    context VARCHAR
);

CREATE TABLE registered_models (
    name VARCHAR PRIMARY KEY,
    description VARCHAR,
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL
);
CREATE TABLE registered_model_tags (name VARCHAR, key VARCHAR, value VARCHAR);
CREATE TABLE model_versions (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    source VARCHAR NOT NULL,
    run_id VARCHAR,
    stage VARCHAR NOT NULL DEFAULT 'None',
    description VARCHAR,
    user_id VARCHAR,
    status VARCHAR NOT NULL DEFAULT 'READY',
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE model_version_tags (name VARCHAR, version INTEGER, key VARCHAR, value VARCHAR);
CREATE TABLE model_aliases (
    name VARCHAR NOT NULL, alias VARCHAR NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE registry_events (
    event_id BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    user_id VARCHAR,
    action VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    version INTEGER,
    field VARCHAR,
    from_value VARCHAR,
    to_value VARCHAR,
    comment VARCHAR
);
"""

#: Read-only views for ``nbtrack.sql``. They live in the ``nbtrack`` schema, which queries
#: given to ``nbtrack.sql`` see first; documented in the README.
_VIEWS_V1 = """
CREATE SCHEMA nbtrack;
CREATE VIEW nbtrack.experiments AS
    SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time,
           last_update_time FROM main.experiments;
CREATE VIEW nbtrack.runs AS
    SELECT r.run_id, r.experiment_id, e.name AS experiment_name, r.run_name, r.user_id,
           r.status, r.start_time, r.end_time, r.end_time - r.start_time AS duration_ms,
           r.lifecycle_stage, r.parent_run_id, r.description, r.source_type, r.source_name,
           r.git_commit, r.git_branch, r.git_dirty, r.host, r.python_version, r.platform,
           r.env_hash, r.artifact_uri,
           (SELECT map(list(key), list(value)) FROM main.params p WHERE p.run_id = r.run_id)
               AS params,
           (SELECT map(list(key), list(value)) FROM main.latest_metrics m
               WHERE m.run_id = r.run_id) AS metrics,
           (SELECT map(list(key), list(value)) FROM main.tags t WHERE t.run_id = r.run_id)
               AS tags
    FROM main.runs r LEFT JOIN main.experiments e USING (experiment_id);
CREATE VIEW nbtrack.runs_wide AS SELECT * EXCLUDE (pid, deleted_time) FROM main.run_index;
CREATE VIEW nbtrack.params AS SELECT run_id, key, value FROM main.params;
CREATE VIEW nbtrack.tags AS SELECT run_id, key, value FROM main.tags;
CREATE VIEW nbtrack.metrics AS SELECT run_id, key, value, step, timestamp FROM main.metrics;
CREATE VIEW nbtrack.latest_metrics AS
    SELECT run_id, key, value, step, timestamp FROM main.latest_metrics;
CREATE VIEW nbtrack.artifacts AS SELECT run_id, path, file_size, sha256 FROM main.artifacts;
CREATE VIEW nbtrack.inputs AS
    SELECT i.run_id, i.context, d.name, d.digest, d.source_type, d.source
    FROM main.inputs i JOIN main.datasets d
      ON d.name = i.dataset_name AND d.digest = i.dataset_digest;
CREATE VIEW nbtrack.environments AS SELECT * FROM main.environments;
CREATE VIEW nbtrack.registered_models AS SELECT * FROM main.registered_models;
CREATE VIEW nbtrack.model_versions AS SELECT * FROM main.model_versions;
CREATE VIEW nbtrack.registry_events AS SELECT * FROM main.registry_events;
"""

#: Version 2: the spool (``nbtrack.store.spool``). ``spool_offsets`` says how far each segment
#: is merged, written in the same transaction as the values, so a merge is never applied twice;
#: ``spool_rejects`` keeps the writes that could not be stored, with the error, as frame payloads.
_V2 = """
CREATE TABLE spool_offsets (segment VARCHAR PRIMARY KEY, merged_to BIGINT NOT NULL);
CREATE TABLE spool_rejects (
    segment VARCHAR NOT NULL,
    frame_offset BIGINT NOT NULL,
    error VARCHAR NOT NULL,
    payload BLOB NOT NULL,
    rejected_time BIGINT NOT NULL
);
CREATE VIEW nbtrack.spool_rejects AS
    SELECT segment, frame_offset, error, rejected_time FROM main.spool_rejects;
"""

#: MIGRATIONS[n] brings a store from version n to n + 1 (version 0 is an empty file).
MIGRATIONS: list[str] = [_V1 + _VIEWS_V1, _V2]
