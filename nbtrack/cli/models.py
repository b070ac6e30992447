"""``nbtrack models``: list registered models, show one, promote a version (guarded)."""

from __future__ import annotations

from datetime import datetime, timezone

from nbtrack.cli.common import CliError, add_tracking_uri, terminal_width
from nbtrack.cli.table import render


def add_parsers(sub) -> None:
    """Register the commands of this module on the ``nbtrack`` subparsers."""
    models = sub.add_parser("models", help="the model registry: list, show, promote")
    add_tracking_uri(models)
    models.set_defaults(func=list_models, read_only=True)
    actions = models.add_subparsers(dest="action", metavar="{list,show,promote}")
    listing = actions.add_parser("list", help="registered models (the default)")
    add_tracking_uri(listing)
    listing.set_defaults(func=list_models, read_only=True)
    show = actions.add_parser("show", help="a model's versions, stages and aliases")
    show.add_argument("name")
    add_tracking_uri(show)
    show.set_defaults(func=show_model, read_only=True)
    promote = actions.add_parser(
        "promote", help="move a version to a stage, if --require holds",
        description="The same guarded promotion as nbtrack.promote: every clause of --require "
        "must hold, and the decision (either way) goes into the registry's history.")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("--to", required=True, metavar="STAGE",
                         help="Staging, Production, Archived or None")
    promote.add_argument("--require", "-r", metavar="CONDITION",
                         help="e.g. \"metrics.rmse <= current AND metrics.r2 >= 0.8\"")
    promote.add_argument("--keep-existing", action="store_true",
                         help="do not archive the versions now in that stage")
    promote.add_argument("--comment", "-m", help="a note for the registry's history")
    add_tracking_uri(promote)
    promote.set_defaults(func=promote_version, read_only=True)


def _when(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")


def list_models(args) -> int:
    import pandas as pd

    import nbtrack

    models = nbtrack.Client().search_registered_models()
    if not models:
        print("No registered models yet: nbtrack.register_model(\"runs:/RUN_ID/model\", NAME) "
              "adds one.")
        return 0
    rows = []
    for model in models:
        stages = {v.current_stage: v.version for v in model.latest_versions}
        rows.append({"name": model.name,
                     "latest": max((int(v.version) for v in model.latest_versions), default=""),
                     "Production": stages.get("Production", ""),
                     "Staging": stages.get("Staging", ""),
                     "aliases": ", ".join(f"@{a}={v}" for a, v in sorted(model.aliases.items())),
                     "updated": _when(model.last_updated_timestamp)})
    print(render(pd.DataFrame(rows), terminal_width()))
    return 0


def _versions(name: str):
    import nbtrack
    from nbtrack.exceptions import NbtrackError

    client = nbtrack.Client()
    try:
        client.get_registered_model(name)
    except NbtrackError:
        names = ", ".join(m.name for m in client.search_registered_models()) or "none yet"
        raise CliError(f"No registered model named {name!r}. `nbtrack models` lists them "
                       f"({names}).") from None
    escaped = name.replace("'", "''")
    return client, client.search_model_versions(f"name = '{escaped}'")


def show_model(args) -> int:
    import pandas as pd

    client, versions = _versions(args.name)
    rows = []
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())[:4])
        rows.append({"version": version.version, "stage": version.current_stage,
                     "aliases": ", ".join("@" + a for a in version.aliases),
                     "run_id": (version.run_id or "")[:8],
                     "created": _when(version.creation_timestamp), "metrics": shown})
    print(f"{args.name}: {len(rows)} version{'s' if len(rows) != 1 else ''}")
    if rows:
        print(render(pd.DataFrame(rows), terminal_width()))
    return 0


def promote_version(args) -> int:
    from nbtrack.tracking.promotion import promote

    client, _ = _versions(args.name)
    version = promote(args.name, args.version, to=args.to, require=args.require,
                      archive_existing=not args.keep_existing, comment=args.comment,
                      client=client)
    guard = f" ({args.require} holds)" if args.require else ""
    print(f"Version {version.version} of {args.name!r} is now in {version.current_stage}"
          f"{guard}.")
    return 0
