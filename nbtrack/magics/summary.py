"""The compact summary shown under a tracked cell: HTML in a notebook, text elsewhere."""

from __future__ import annotations

import html

from nbtrack.entities import Run

MAX_METRICS = 6
_COLORS = {"FINISHED": "#1a7f37", "FAILED": "#cf222e", "KILLED": "#9a6700",
           "RUNNING": "#0969da"}


def _duration(run: Run) -> str:
    if run.info.end_time is None:
        return "running"
    seconds = (run.info.end_time - run.info.start_time) / 1000
    return f"{seconds:.2f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _metrics(run: Run) -> list[tuple[str, str]]:
    items = sorted(run.data.metrics.items())[:MAX_METRICS]
    return [(k, f"{v:.4g}") for k, v in items]


def summary_text(run: Run, experiment: str, notes: list[str] | None = None) -> str:
    """One line for terminals and logs (and one more per note)."""
    metrics = ", ".join(f"{k}={v}" for k, v in _metrics(run))
    extra = f" | {metrics}" if metrics else ""
    return (f"nbtrack: run {run.info.run_name!r} ({run.info.run_id[:8]}) in {experiment!r}: "
            f"{run.info.status} in {_duration(run)}{extra}"
            + "".join(f"\n  note: {note}" for note in notes or []))


def summary_html(run: Run, experiment: str, notes: list[str] | None = None) -> str:
    """A one-row card for notebooks."""
    color = _COLORS.get(run.info.status, "#57606a")
    cells = "".join(
        f"<span style='margin-right:1em'><b>{html.escape(k)}</b> {html.escape(v)}</span>"
        for k, v in _metrics(run)
    )
    return (
        "<div class='nbtrack-summary' style='font-family:var(--jp-ui-font-family,sans-serif);"
        "font-size:12px;border-left:3px solid " + color + ";padding:2px 8px;margin:2px 0'>"
        f"<b>{html.escape(run.info.run_name)}</b> "
        f"<code>{run.info.run_id[:8]}</code> · {html.escape(experiment)} · "
        f"<span style='color:{color}'>{run.info.status}</span> · {_duration(run)}"
        + (f"<br>{cells}" if cells else "")
        + "".join(f"<br><span style='color:#9a6700'>note: {html.escape(n)}</span>"
                  for n in notes or [])
        + "</div>"
    )


def summary_bundle(run: Run, experiment: str, notes: list[str] | None = None) -> dict[str, str]:
    """A display bundle: front ends pick HTML, terminals the text."""
    return {"text/plain": summary_text(run, experiment, notes),
            "text/html": summary_html(run, experiment, notes)}
