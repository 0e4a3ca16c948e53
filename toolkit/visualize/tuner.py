"""The Tuner's outputs as views: the trials table of a TunerResults artifact, and the chosen
values (with their search space) of a HyperParameters artifact.

Static HTML with inline styles only (no script, no SVG, nothing fetched), so the table reads
the same in an untrusted or exported notebook; every value from the artifact is escaped. The
text form is the same table, aligned, for consoles and papermill logs.
"""
from __future__ import annotations

from typing import Any

from toolkit.visualize.html import (BAD, GOOD, NOTE, View, esc, escape, fmt_num, plain, table,
                                    tag)
from toolkit.visualize.reading import toolkit_artifact

BEST_MARK = "★"
#: rows shown; a search of more trials lists the best ones beyond this in the text's note
MAX_ROWS = 500
ERROR_CHARS = 160


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return fmt_num(value)
    return str(value)


def tuner_results_view(artifact: Any) -> View:
    """Every trial: its values, score, status and duration, the best one marked."""
    record = toolkit_artifact(artifact, "TunerResults").trials()
    trials = list(record.get("trials") or [])
    best_id = record.get("best_trial_id")
    objective = record.get("objective") or {}
    names: list[str] = []
    for trial in trials:
        for name in (trial.get("values") or {}):
            if name not in names:
                names.append(name)
    parallel = int(record.get("num_parallel_trials") or 1) > 1
    failed = any(trial.get("error") for trial in trials)
    headers = ["", "Trial", "Status", "Score", *names, "Duration"]
    headers += ["Worker"] if parallel else []
    headers += ["Error"] if failed else []
    numeric = [3, *range(4, 4 + len(names)), 4 + len(names)]
    rows, text_rows = [], []
    for trial in trials[:MAX_ROWS]:
        best = trial.get("trial_id") == best_id and best_id is not None
        status = str(trial.get("status") or "")
        completed = status == "COMPLETED"
        values = trial.get("values") or {}
        cells = [
            tag("span", BEST_MARK, f"color:{GOOD}", title="best trial") if best else "",
            tag("b", esc(trial.get("trial_id"), 40)) if best else esc(trial.get("trial_id"), 40),
            esc(status.lower(), 40) if completed else tag("span", esc(status.lower(), 40),
                                                          f"color:{BAD}"),
            tag("b", esc(fmt_num(trial.get("score")), 40)) if best
            else esc(fmt_num(trial.get("score")), 40),
            *[esc(_value(values[n]), 80) if n in values else tag("span", "–", NOTE)
              for n in names],
            esc(_duration(trial.get("duration_s")), 40),
        ]
        if parallel:
            cells.append(esc(trial.get("worker") or "–", 40))
        if failed:
            error = trial.get("error") or ""
            cells.append(tag("span", esc(error, ERROR_CHARS), f"color:{BAD}", title=error)
                         if error else "")
        rows.append(cells)
        text_rows.append([BEST_MARK if best else "", plain(trial.get("trial_id"), 40),
                          plain(status.lower(), 40), fmt_num(trial.get("score")),
                          *[plain(_value(values[n]), 40) if n in values else "–" for n in names],
                          _duration(trial.get("duration_s"))]
                         + ([plain(trial.get("worker") or "–", 40)] if parallel else [])
                         + ([plain(trial.get("error") or "", ERROR_CHARS)] if failed else []))
    completed = sum(1 for t in trials if t.get("status") == "COMPLETED")
    summary = f"{len(trials)} trials, {completed} completed"
    if objective.get("name"):
        summary += (f"; objective {objective['name']}"
                    + (f" ({objective['direction']})" if objective.get("direction") else ""))
    if best_id is not None:
        best_trial = next((t for t in trials if t.get("trial_id") == best_id), None)
        if best_trial is not None:
            summary += f"; best trial {best_id}: {fmt_num(best_trial.get('score'))}"
    if parallel:
        summary += f"; {record['num_parallel_trials']} trials at once"
    more = len(trials) - MAX_ROWS
    html = (tag("div", escape(summary), NOTE + ";margin-bottom:2px")
            + table(headers, rows, numeric=numeric, nowrap=True))
    lines = [plain(summary, 500), *_aligned(headers, text_rows)]
    if more > 0:
        html += tag("div", f"… {more:,} more trials", NOTE)
        lines.append(f"… {more:,} more trials")
    return View(html, "\n".join(lines), "Tuner trials")


def hyperparameters_view(artifact: Any) -> View:
    """The chosen values, each beside its search space."""
    config = toolkit_artifact(artifact, "HyperParameters").load()
    values = config.get("values") or {}
    space = {item.get("config", {}).get("name"): item for item in config.get("space") or []
             if isinstance(item, dict)}
    names = list(values) + [n for n in space if n not in values and n is not None]
    rows, text_rows = [], []
    for name in names:
        searched = _space(space.get(name))
        chosen = _value(values[name]) if name in values else "–"
        rows.append([tag("b", esc(name, 120)), esc(chosen, 120), esc(searched, 300)])
        text_rows.append([plain(name, 60), plain(chosen, 60), plain(searched, 200)])
    headers = ["Hyperparameter", "Value", "Searched"]
    html = table(headers, rows) if rows else tag("div", "No hyperparameters.", NOTE)
    return View(html, "\n".join(_aligned(headers, text_rows)) or "(no hyperparameters)",
                "Best hyperparameters")


def _space(item: dict[str, Any] | None) -> str:
    """A search-space entry as a person reads it: ``Choice 0.01, 0.001``, ``Int 1–3``."""
    if not item:
        return ""
    kind = str(item.get("class_name") or "")
    config = item.get("config") or {}
    if "values" in config:
        return f"{kind} " + ", ".join(_value(v) for v in config["values"])
    if "min_value" in config:
        step = config.get("step")
        return (f"{kind} {_value(config['min_value'])}–{_value(config.get('max_value'))}"
                + (f" step {_value(step)}" if step not in (None, 1) else "")
                + (f" ({config['sampling']})" if config.get("sampling") not in (None, "linear")
                   else ""))
    if "value" in config:
        return f"{kind} {_value(config['value'])}"
    return kind


def _aligned(headers: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [line(headers), *(line(r) for r in rows)]
