"""Registered models, versions, stages, aliases, tags and descriptions, in both directions.

Versions are matched by source and run, so copying again adds nothing. A version keeps its
number when the numbers of the source have no gaps; otherwise the summary notes the new one.
"""

from __future__ import annotations

from functools import partial

from nbtrack.exceptions import NbtrackError, NotFoundError
from nbtrack.interop.source import pages
from nbtrack.interop.summary import Summary

#: the most versions made and deleted again to keep a version's number across a gap
MAX_PLACEHOLDERS = 1000


def create_numbered(create, delete, wanted: int):
    """``create()`` a version numbered ``wanted`` where the numbers before it have a gap.

    Both registries number a new version one past the highest they have held, so versions
    made and deleted again fill the gap left by versions deleted in the source. Returns the
    version; its number is lower only if the target already holds higher ones.
    """
    made = create()
    fillers: list = []
    while int(made.version) < wanted and len(fillers) < MAX_PLACEHOLDERS:
        fillers.append(made)
        made = create()
    for filler in fillers:
        delete(filler.version)
    return made


def find_copy(have: list, source: str, run_id: str | None, number, claimed: set[str]):
    """The version in ``have`` that is this one, copied before: same source and run.

    The same number is preferred; each version is claimed once, since one source may hold
    several versions.
    """
    same = [v for v in have if v.source == source and (v.run_id or None) == (run_id or None)
            and str(v.version) not in claimed]
    found = next((v for v in same if str(v.version) == str(number)), None) or \
        (same[0] if same else None)
    if found is not None:
        claimed.add(str(found.version))
    return found


def _quoted(name: str) -> str:
    return "'" + name.replace("'", "\\'") + "'"


def _aliases(model) -> dict[str, str]:
    aliases = getattr(model, "aliases", None) or {}
    if isinstance(aliases, dict):
        return {str(k): str(v) for k, v in aliases.items()}
    return {str(a.alias): str(a.version) for a in aliases}  # MLflow's RegisteredModelAlias


def _stage(version) -> str | None:
    stage = getattr(version, "current_stage", None)
    return None if stage in (None, "", "None") else str(stage)


def import_source(version, model_sources: dict[str, str], run_ids: dict[str, str]) -> str | None:
    """The nbtrack source of an MLflow version, or None if it is not in an imported run."""
    source = str(version.source)
    if source.startswith("models:/"):
        return model_sources.get(source[len("models:/"):].strip("/"))
    if source.startswith("runs:/"):
        run_id, _, path = source[len("runs:/"):].partition("/")
        return f"runs:/{run_ids.get(run_id, run_id)}/{path}" if run_id in run_ids else None
    run_id = version.run_id
    marker = f"/{run_id}/artifacts/"
    if run_id and run_id in run_ids and marker in source:
        return f"runs:/{run_ids[run_id]}/{source.split(marker, 1)[1].strip('/')}"
    return None


def import_registry(mlflow_client, client, summary: Summary, model_sources: dict[str, str],
                    run_ids: dict[str, str], source_for=None, names: set[str] | None = None,
                    copied: str = "imported") -> dict[str, dict[str, str]]:
    """Copy every registered model of the MLflow store (or of ``names``) into nbtrack.

    ``source_for(version)`` gives a version's source in nbtrack, or None when its model is not
    in a copied run (default: ``import_source``); ``copied`` is the word the skips use. Another
    nbtrack ``Client`` is read the same way (``nbtrack push``). Returns, per model, the copied
    versions' numbers: ``{source number: number in nbtrack}``.
    """
    if source_for is None:
        source_for = partial(import_source, model_sources=model_sources, run_ids=run_ids)
    copies: dict[str, dict[str, str]] = {}
    for model in pages(mlflow_client.search_registered_models, max_results=1000):
        name = model.name
        if names is not None and name not in names:
            continue
        try:
            current = client.get_registered_model(name)
            summary.already("registered models")
        except NotFoundError:
            current = client.create_registered_model(name, tags=dict(model.tags or {}),
                                                     description=model.description or None)
            summary.copy("registered models")
        if (model.description or "") != (current.description or ""):
            client.update_registered_model(name, model.description or "")
        for key, value in (model.tags or {}).items():
            if current.tags.get(key) != value:
                client.set_registered_model_tag(name, key, value)
        versions = pages(mlflow_client.search_model_versions, filter_string=f"name={_quoted(name)}",
                         max_results=1000)
        have = client.search_model_versions(f"name = {_quoted(name)}", max_results=1000)
        numbers: dict[str, str] = {}
        claimed: set[str] = set()
        for version in sorted(versions, key=lambda v: int(v.version)):
            what = f"{name}/{version.version}"
            source = source_for(version)
            if source is None:
                summary.skip("model version", what, f"its source {version.source} is not in a "
                             f"run that was {copied}")
                continue
            run_id = run_ids.get(version.run_id or "", version.run_id)
            match = find_copy(have, source, run_id, version.version, claimed)
            if match is None:
                match = create_numbered(
                    partial(client.create_model_version, name, source, run_id,
                            tags=dict(version.tags or {}),
                            description=version.description or None),
                    partial(client.delete_model_version, name), int(version.version))
                summary.copy("model versions")
                if str(match.version) != str(version.version):
                    summary.note(f"MLflow's {what} is nbtrack's version {match.version}.")
            else:
                summary.already("model versions")
            numbers[str(version.version)] = str(match.version)
            for key, value in (version.tags or {}).items():
                if match.tags.get(key) != value:
                    client.set_model_version_tag(name, match.version, key, value)
            if (version.description or "") != (match.description or ""):
                client.update_model_version(name, match.version, version.description or "")
            stage = _stage(version)
            if stage is not None and stage != _stage(match):
                client.transition_model_version_stage(name, match.version, stage)
        _copy_aliases(client, name, _aliases(model), _aliases(current), numbers, summary)
        copies[name] = numbers
    return copies


def _copy_aliases(target, name: str, aliases: dict[str, str], existing: dict[str, str],
                  numbers: dict[str, str], summary: Summary) -> None:
    for alias, version in aliases.items():
        mapped = numbers.get(version)
        if mapped is None:
            summary.skip("alias", f"{name}@{alias}", f"its version {version} was not copied")
        elif existing.get(alias) == mapped:
            summary.already("aliases")
        else:
            target.set_registered_model_alias(name, alias, mapped)
            summary.copy("aliases")


def export_source(version, run_ids: dict[str, str]) -> str | None:
    """The MLflow source of an nbtrack version: its run's ``runs:/`` URI, or its folder."""
    source = str(version.source)
    if source.startswith("runs:/"):
        run_id, _, path = source[len("runs:/"):].partition("/")
        return f"runs:/{run_ids[run_id]}/{path}" if run_id in run_ids else None
    return None if source.startswith("models:/") else source


def export_registry(client, mlflow_client, summary: Summary, run_ids: dict[str, str]) -> None:
    """Copy every registered model of nbtrack into the MLflow store."""
    from mlflow.exceptions import MlflowException

    for model in client.search_registered_models(max_results=1000):
        name = model.name
        try:
            current = mlflow_client.get_registered_model(name)
            summary.already("registered models")
        except MlflowException:
            current = mlflow_client.create_registered_model(
                name, tags=dict(model.tags or {}), description=model.description or None)
            summary.copy("registered models")
        if (model.description or "") != (current.description or ""):
            mlflow_client.update_registered_model(name, model.description or "")
        for key, value in (model.tags or {}).items():
            if (current.tags or {}).get(key) != value:
                mlflow_client.set_registered_model_tag(name, key, value)
        have = pages(mlflow_client.search_model_versions, filter_string=f"name={_quoted(name)}",
                     max_results=1000)
        versions = client.search_model_versions(f"name = {_quoted(name)}", max_results=1000)
        numbers: dict[str, str] = {}
        claimed: set[str] = set()
        for version in sorted(versions, key=lambda v: int(v.version)):
            what = f"{name}/{version.version}"
            source = export_source(version, run_ids)
            if source is None:
                summary.skip("model version", what, f"its source {version.source} is not in a "
                             "run that was exported")
                continue
            run_id = run_ids.get(version.run_id or "")
            match = find_copy(have, source, run_id, version.version, claimed)
            if match is None:
                try:
                    match = create_numbered(
                        partial(mlflow_client.create_model_version, name, source, run_id,
                                tags=dict(version.tags or {}),
                                description=version.description or None),
                        partial(mlflow_client.delete_model_version, name),
                        int(version.version))
                except (MlflowException, NbtrackError) as exc:
                    summary.skip("model version", what, str(exc).splitlines()[0])
                    continue
                summary.copy("model versions")
                if str(match.version) != str(version.version):
                    summary.note(f"nbtrack's {what} is MLflow's version {match.version}.")
            else:
                summary.already("model versions")
            numbers[str(version.version)] = str(match.version)
            stage = _stage(version)
            if stage is not None and stage != _stage(match):
                mlflow_client.transition_model_version_stage(name, match.version, stage)
        _copy_aliases(mlflow_client, name, _aliases(model), _aliases(current), numbers, summary)
