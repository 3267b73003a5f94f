"""A diff report condensed to what a changelog entry or a PR comment carries."""

from __future__ import annotations

from typing import Any


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """A small JSON-able summary of a diff report (report.build's, or POST /api/diff's).

    Returns::

        {
          "old": "triage@6", "new": "triage@7",      # the sides as named in the report
          "dataset": {"source": ..., "hash": ...},
          "cases": 12, "compared": 12, "incomplete": 0,
          "changed": true,                           # any behaviour change reported
          "changed_cases": 4,
          "behaviour": {"json_validity": 4, "json_keys": 0, "label": 4, "tool_calls": 0,
                        "refusal": 0, "gateway_refusal": 0, "meaning": 0},
          "meaning": {"same": 8, "rephrased": 0, "changed": 4},
          "label_path": "label",
          "label_flips": {"billing -> (none)": 4},
          "length_ratio_p50": 0.31,
          "similarity": "lexical",
          "noise_floor": false
        }

    `behaviour` counts the cases with a *reported* change of each kind (beyond the noise
    floor when there is one); `label` is left out without a label path; `meaning` counts
    every compared case once. Refuses (KeyError) a dict that is not a diff report.
    """
    categories = report["categories"]
    labels = report.get("labels") or {}
    flips = {
        f"{before} -> {after}": count
        for before, row in (labels.get("matrix") or {}).items()
        for after, count in row.items()
        if after != before
    }
    return {
        "old": _side_name(report.get("old")),
        "new": _side_name(report.get("new")),
        "dataset": {k: (report.get("dataset") or {}).get(k) for k in ("source", "hash")},
        "cases": report["cases"],
        "compared": report["compared"],
        "incomplete": len(report.get("incomplete") or []),
        "changed": bool(report["changed"]),
        "changed_cases": len(report["changed_cases"]),
        "behaviour": {kind: entry["reported"] for kind, entry in categories.items()},
        "meaning": dict(report["meaning"]),
        "label_path": report.get("label_path"),
        "label_flips": dict(sorted(flips.items(), key=lambda item: -item[1])),
        "length_ratio_p50": (report.get("length_ratio") or {}).get("p50"),
        "similarity": (report.get("similarity") or {}).get("method"),
        "noise_floor": bool(report.get("noise_floor")),
    }


def _side_name(side: Any) -> str | None:
    if isinstance(side, dict):
        name = side.get("name")
        return str(name) if name is not None else None
    return None
