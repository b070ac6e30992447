"""MLflow's system tags (``mlflow.runName``, …) and the run columns that hold them.

nbtrack keeps these values in a run's columns. Reads show them as tags too, filters on the tags
test the columns, and writing such a tag changes the column, so code written for MLflow's tags
works unchanged.
"""

from __future__ import annotations

RUN_NAME = "mlflow.runName"
USER = "mlflow.user"
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
GIT_COMMIT = "mlflow.source.git.commit"
PARENT_RUN_ID = "mlflow.parentRunId"
NOTE = "mlflow.note.content"

#: system tag -> the run column (and filter attribute) that holds its value
COLUMNS = {
    RUN_NAME: "run_name",
    USER: "user_id",
    SOURCE_NAME: "source_name",
    SOURCE_TYPE: "source_type",
    GIT_COMMIT: "git_commit",
    PARENT_RUN_ID: "parent_run_id",
    NOTE: "description",
}


def split(tags: dict) -> tuple[dict[str, str], dict[str, str]]:
    """``(columns, others)``: system tags as ``{column: value}``, and the remaining tags."""
    columns = {COLUMNS[k]: v for k, v in tags.items() if k in COLUMNS}
    return columns, {k: v for k, v in tags.items() if k not in COLUMNS}


def from_columns(values: dict[str, object]) -> dict[str, str]:
    """The system tags of a run whose columns are ``values`` (absent where a column is empty)."""
    return {tag: str(values[column]) for tag, column in COLUMNS.items()
            if values.get(column) not in (None, "")}
