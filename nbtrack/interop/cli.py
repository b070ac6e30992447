"""``nbtrack import-mlflow SOURCE``, ``nbtrack export-mlflow DEST`` and ``nbtrack push``."""

from __future__ import annotations

from nbtrack.cli.common import add_tracking_uri


def add_parsers(sub) -> None:
    """Register the two commands on the ``nbtrack`` subparsers."""
    importing = sub.add_parser(
        "import-mlflow", help="copy an MLflow store into this nbtrack store",
        description="Copy experiments, runs (params, full metric history, tags, inputs, "
        "artifacts, models) and the model registry of an MLflow store into the nbtrack store. "
        "Runs keep MLflow's ids, so running it again copies only what is new. Needs MLflow "
        "(pip install mlflow).")
    importing.add_argument("source", metavar="SOURCE",
                           help="sqlite:///mlflow.db, a mlruns/ folder, or a database URI "
                                "such as postgresql://user@host/db")
    importing.add_argument("--artifact-root", metavar="FOLDER",
                           help="where a tracking server kept the artifacts the store names "
                                "mlflow-artifacts:/ (its --artifacts-destination, by default "
                                "./mlartifacts beside the server)")
    importing.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_tracking_uri(importing)
    importing.set_defaults(func=import_command, read_only=False)

    exporting = sub.add_parser(
        "export-mlflow", help="copy this nbtrack store into an MLflow store",
        description="Copy experiments, runs, artifacts, models and the model registry into an "
        "MLflow store, which is created if needed. Each run is tagged nbtrack.sourceRunId, "
        "so running it again copies only what is new. Needs MLflow (pip install mlflow).")
    exporting.add_argument("dest", metavar="DEST",
                           help="sqlite:///mlflow.db (MLflow 3's recommended store), a "
                                "folder (a mlruns/ store, which MLflow 3 opens only with "
                                "MLFLOW_ALLOW_FILE_STORE=true), or a database URI")
    exporting.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_tracking_uri(exporting)
    exporting.set_defaults(func=export_command, read_only=True)

    pushing = sub.add_parser(
        "push", help="send this store's runs, artifacts and registry to another (the team's)",
        description="Send experiments, runs (params, tags, full metric history, inputs, "
        "artifacts, status, times, source) and registered models (versions, stages, aliases, "
        "tags) to another nbtrack store, usually the team store. Runs keep their ids and only "
        "what the target lacks is sent, so pushing again adds nothing and a push that was cut "
        "off resumes. Runs still RUNNING are sent as they are; push again once they end.")
    pushing.add_argument("--to", required=True, metavar="URI",
                         help="the target store: ducklake:postgresql://user@host/db?data=... "
                              "(the team store) or a folder")
    pushing.add_argument("--experiment", action="append", metavar="NAME",
                         help="push only this experiment (repeat for several); registered "
                              "models follow their runs")
    pushing.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_tracking_uri(pushing)
    pushing.set_defaults(func=push_command, read_only=True)


def import_command(args) -> int:
    from nbtrack.interop.importer import import_mlflow

    summary = import_mlflow(args.source, show_progress=not args.no_progress,
                            artifact_root=args.artifact_root)
    print(summary)
    return 0


def export_command(args) -> int:
    from nbtrack.interop.exporter import export_mlflow

    summary = export_mlflow(args.dest, show_progress=not args.no_progress)
    print(summary)
    return 0


def push_command(args) -> int:
    from nbtrack.interop.push import PushConflictError, push

    try:
        summary = push(args.to, experiment_names=args.experiment,
                       show_progress=not args.no_progress)
    except PushConflictError as exc:
        print(exc.summary)
        raise
    print(summary)
    return 0
