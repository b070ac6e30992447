"""``nbtrack.registry()``: the model registry under a cell, with controls to promote.

Every button goes through the same Client calls and checks as code does: a stage change with
a requirement is a guarded promotion (``nbtrack.promote``), and every change lands in the
registry's audit log, which the widget shows.
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

from nbtrack.exceptions import NbtrackError

STATIC = Path(__file__).resolve().parent.parent / "static"
HISTORY_ROWS = 50
METRICS_SHOWN = 4


class RegistryWidget(anywidget.AnyWidget):
    """Registered models, their versions with stage and alias badges, and the history."""

    _esm = STATIC / "registry.js"
    _css = STATIC / "registry.css"

    models: traitlets.List[dict] = traitlets.List().tag(sync=True)
    selected_model = traitlets.Unicode("").tag(sync=True)
    versions: traitlets.List[dict] = traitlets.List().tag(sync=True)
    history: traitlets.List[dict] = traitlets.List().tag(sync=True)
    require = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    message_kind = traitlets.Unicode("").tag(sync=True)

    def __init__(self, client, name: str | None = None, require: str = "") -> None:
        super().__init__(require=require)
        self._client = client
        self.refresh(name)
        self.observe(lambda _: self.refresh(), names=["selected_model"])
        self.on_msg(self._on_message)

    # data --------------------------------------------------------------------------------
    def refresh(self, name: str | None = None) -> None:
        """Read the registry again (the selected model's versions and history)."""
        models = self._client.search_registered_models()
        names = [m.name for m in models]
        chosen = name or self.selected_model or (names[0] if names else "")
        if chosen and chosen not in names:
            raise NbtrackError(f"No registered model named {chosen!r}; there are: "
                               f"{', '.join(names) or 'none yet'}.")
        with self.hold_sync():
            self.models = [{"name": m.name, "description": m.description or "",
                            "aliases": m.aliases} for m in models]
            self.selected_model = chosen
            self.versions = self._versions(chosen) if chosen else []
            self.history = self._history(chosen) if chosen else []

    def _versions(self, name: str) -> list[dict]:
        rows = []
        for version in self._client.search_model_versions(f"name = '{_quote(name)}'"):
            run_name, metrics = None, {}
            if version.run_id:
                try:
                    run = self._client.get_run(version.run_id)
                    run_name = run.info.run_name
                    metrics = dict(sorted(run.data.metrics.items())[:METRICS_SHOWN])
                except NbtrackError:
                    run_name = "(run deleted)"
            rows.append({"version": version.version, "stage": version.current_stage,
                         "aliases": version.aliases, "description": version.description or "",
                         "run_id": version.run_id, "run_name": run_name, "metrics": metrics,
                         "created": version.creation_timestamp})
        return rows

    def _history(self, name: str) -> list[dict]:
        frame = self._client.get_registry_events(name).tail(HISTORY_ROWS).iloc[::-1]
        keep = ["timestamp", "user_id", "action", "version", "field", "from_value", "to_value",
                "comment"]
        frame = frame[keep].astype(object).where(frame[keep].notna(), None)
        return frame.to_dict("records")

    # actions -----------------------------------------------------------------------------
    def _on_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and "action" in content:
            self.act(content)

    def act(self, request: dict) -> None:
        """Carry out one request from the front end; report the outcome in ``message``."""
        from nbtrack.tracking.promotion import promote

        name = self.selected_model
        action = request.get("action")
        try:
            if action == "transition":
                require = (request.get("require") or "").strip() or None
                version = promote(name, request["version"], to=request["stage"],
                                  require=require, archive_existing=bool(request.get(
                                      "archive", True)), client=self._client)
                text = f"Version {version.version} of {name} is now in {version.current_stage}."
            elif action == "set_alias":
                self._client.set_registered_model_alias(name, request["alias"].strip(),
                                                        request["version"])
                text = f"@{request['alias'].strip()} now points at version {request['version']}."
            elif action == "delete_alias":
                self._client.delete_registered_model_alias(name, request["alias"])
                text = f"@{request['alias']} removed."
            elif action == "describe":
                self._client.update_model_version(name, request["version"],
                                                  request.get("description") or None)
                text = f"Description of version {request['version']} saved."
            elif action == "refresh":
                text = ""
            else:
                raise NbtrackError(f"Unknown action {action!r}.")
            kind = "ok"
        except (NbtrackError, KeyError, ValueError) as exc:
            text, kind = str(exc), "error"
        self.refresh()
        with self.hold_sync():
            self.message, self.message_kind = text, kind

    def __repr__(self) -> str:
        lines = [f"<nbtrack registry: {len(self.models)} models; {self.selected_model or '-'}>"]
        for v in self.versions:
            aliases = " ".join(f"@{a}" for a in v["aliases"])
            lines.append(f"  v{v['version']:<4} {v['stage']:<11} {aliases}")
        return "\n".join(lines)


def _quote(text: str) -> str:
    return text.replace("'", "''")


def registry(name: str | None = None, require: str = "") -> RegistryWidget:
    """Show the model registry, opened at model ``name`` (default: the first).

    ``require`` guards every promotion made from the widget, e.g. ``"metrics.rmse <= current"``.
    """
    from nbtrack.tracking import fluent

    return RegistryWidget(fluent.current_client(), name, require)
