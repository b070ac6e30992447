"""What differs between runs: params, metrics, tags, environment, and the code itself."""

from __future__ import annotations

import difflib

MAX_CODE_LINES = 2000


def _section(title: str, per_run: list[dict]) -> dict:
    keys = sorted(set().union(*per_run)) if per_run else []
    rows = []
    for key in keys:
        values = [run.get(key) for run in per_run]
        shown = [None if v is None else str(v) for v in values]
        rows.append({"key": key, "values": shown, "differs": len(set(shown)) > 1})
    return {"title": title, "rows": rows}


def _code_diff(base_name: str, base: str | None, other_name: str, other: str | None) -> dict:
    before = (base or "").splitlines()[:MAX_CODE_LINES]
    after = (other or "").splitlines()[:MAX_CODE_LINES]
    lines = []
    for line in difflib.unified_diff(before, after, base_name, other_name, lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        op = line[:1] if line[:1] in "+-@" else " "
        lines.append({"op": op, "text": line[1:] if op != "@" else line})
    return {"base": base_name, "other": other_name, "lines": lines,
            "same": not lines and bool(base or other)}


def run_diff(client, run_ids: list[str]) -> dict:
    """The comparison of two or more runs, ready to send to the front end as JSON."""
    if len(run_ids) < 2:
        return {}
    runs = [client.get_run(r) for r in run_ids]
    names = [r.info.run_name for r in runs]
    environments = []
    for run in runs:
        env = client.get_environment(run.source.env_hash) if run.source.env_hash else None
        environments.append(env or {})
    sections = [
        _section("params", [r.data.params for r in runs]),
        _section("metrics", [r.data.metrics for r in runs]),
        _section("tags", [{k: v for k, v in r.data.tags.items()
                           if not k.startswith("nbtrack.log-model")} for r in runs]),
        _section("environment", [
            {"python": r.source.python_version, "platform": r.source.platform,
             "git commit": r.source.git_commit, "notebook or script": r.source.name}
            for r in runs]),
        _section("packages", [e.get("packages", {}) for e in environments]),
    ]
    code = [_code_diff(names[0], runs[0].source.code, names[i], runs[i].source.code)
            for i in range(1, len(runs))]
    return {"runs": [{"run_id": r.info.run_id, "run_name": r.info.run_name} for r in runs],
            "sections": sections, "code": code}
