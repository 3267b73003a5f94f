"""The diff report: every case's two answers compared, counted per behaviour, with the
label matrix, the length ratios, the meaning buckets and, when asked for, the noise floor.

The report is plain JSON (what `pilothouse diff --format json` prints and POST /api/diff
answers); render.py draws it as a table or Markdown and summary.py condenses it.

With the noise floor (noise.py), a change is *reported* only when the old side's own
flips cannot explain it; without one, every change is. What is reported is listed,
counted, and the reason `pilothouse diff` exits 1.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pilothouse.behaviour import noise
from pilothouse.behaviour.compare import CATEGORIES, MEANING, Change, changes, identical
from pilothouse.behaviour.observe import Observation
from pilothouse.behaviour.similarity import BUCKETS, CHANGED, bucket
from pilothouse.evals.types import Case

REPORT_KINDS = (*CATEGORIES, MEANING)
SHOWN_CHARS = 4000  # of each answer in the report's listed cases
QUANTILES = (("p10", 0.10), ("p25", 0.25), ("p50", 0.50), ("p75", 0.75), ("p90", 0.90))


@dataclass(frozen=True)
class Comparison:
    """Two answers to one case, compared: the behaviours that changed, whether the
    answers are identical, their similarity (None when identical) and the bucket."""

    changes: tuple[Change, ...]
    identical: bool
    similarity: float | None
    bucket: str

    @property
    def kinds(self) -> set[str]:
        """The behaviours that changed; `meaning` when only the text's meaning did."""
        found = {c.category for c in self.changes}
        if not found and self.bucket == CHANGED:
            found.add(MEANING)
        return found


def needs_similarity(old: Observation, new: Observation) -> bool:
    """Whether comparing these two answers needs a similarity (they are not identical)."""
    return not identical(old, new)


def compare_pair(
    old: Observation,
    new: Observation,
    *,
    labels: bool,
    similarity: float | None,
    threshold: float,
) -> Comparison:
    """Compare two comparable answers; `similarity` is required unless they are identical."""
    same = identical(old, new)
    found = tuple(changes(old, new, labels=labels))
    score = None if same else (similarity if similarity is not None else 0.0)
    return Comparison(found, same, score, bucket(same, bool(found), score or 0.0, threshold))


@dataclass
class CaseResult:
    """One case: its answers (`again`: the old side's second answer, for the noise
    floor), how they compare, or why they could not be compared."""

    case: Case
    old: Observation
    new: Observation
    again: Observation | None = None
    versus: Comparison | None = None
    noise: Comparison | None = None
    error: str | None = None
    reported: list[Change] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)  # kinds that were noise here


def build(
    results: list[CaseResult], header: dict[str, Any], *, label_path: str | None
) -> dict[str, Any]:
    """The report for `results`; `header` (ids, sides, dataset, similarity) goes first.

    Cases with `error` set are listed as incomplete and counted nowhere else.
    """
    noise_floor = any(r.noise is not None for r in results)
    complete = [r for r in results if r.error is None and r.versus is not None]
    categories: dict[str, dict[str, Any]] = {}
    for kind in REPORT_KINDS:
        if kind == "label" and label_path is None:
            continue
        changed = [r for r in complete if kind in _kinds(r.versus)]
        if not noise_floor:
            categories[kind] = {"changed": len(changed), "noise": None, "reported": len(changed)}
            continue
        noisy = {id(r) for r in complete if kind in _kinds(r.noise)}
        steady_changed = sum(1 for r in changed if id(r) not in noisy)
        judged = noise.verdict(
            len(changed), len(noisy), len(complete) - len(noisy), steady_changed, len(complete)
        )
        categories[kind] = {
            "changed": judged.changed,
            "noise": judged.noise,
            "steady_changed": judged.steady_changed,
            "p_value": round(judged.p_value, 4),
            "within_noise": judged.changed > 0 and not judged.beyond,
            "reported": judged.reported,
        }
    for result in complete:
        _report_case(result, categories)
    buckets = Counter(r.versus.bucket for r in complete)  # type: ignore[union-attr]
    listed = [r for r in complete if r.reported or _meaning_reported(r)]
    return {
        **header,
        "label_path": label_path,
        "noise_floor": noise_floor,
        "cases": len(results),
        "compared": len(complete),
        "incomplete": [{"id": r.case.id, "error": r.error} for r in results if r.error],
        "categories": categories,
        "meaning": {b: buckets[b] for b in BUCKETS},
        "labels": _labels(complete, label_path),
        "length_ratio": _length_ratio(complete),
        "changed": bool(listed),
        "changed_cases": [_case_json(r) for r in listed],
        "rephrased_cases": [
            _case_json(r)
            for r in complete
            if r.versus is not None and r.versus.bucket == "rephrased" and r not in listed
        ],
    }


def _kinds(comparison: Comparison | None) -> set[str]:
    return comparison.kinds if comparison is not None else set()


def _report_case(result: CaseResult, categories: dict[str, dict[str, Any]]) -> None:
    """Keep the case's changes beyond the noise floor (all of them without one): not in a
    behaviour its own old answers disagree on, nor in one within the noise altogether."""
    assert result.versus is not None
    noisy = _kinds(result.noise)
    result.suppressed = sorted(
        k
        for k in result.versus.kinds
        if k in noisy or categories.get(k, {}).get("within_noise", False)
    )
    result.reported = [c for c in result.versus.changes if c.category not in result.suppressed]


def _meaning_reported(result: CaseResult) -> bool:
    return (
        result.versus is not None
        and MEANING in result.versus.kinds
        and MEANING not in result.suppressed
    )


def _labels(complete: list[CaseResult], label_path: str | None) -> dict[str, Any] | None:
    if label_path is None:
        return None
    matrix: dict[str, Counter[str]] = {}
    for result in complete:
        before = result.old.label or "(none)"
        after = result.new.label or "(none)"
        matrix.setdefault(before, Counter())[after] += 1
    flips = sum(n for before, row in matrix.items() for after, n in row.items() if after != before)
    return {
        "path": label_path,
        "matrix": {b: dict(sorted(row.items())) for b, row in sorted(matrix.items())},
        "flips": flips,
    }


def _length_ratio(complete: list[CaseResult]) -> dict[str, Any]:
    ratios = sorted(
        r.new.length_chars / r.old.length_chars for r in complete if r.old.length_chars > 0
    )
    out: dict[str, Any] = {
        "cases": len(ratios),
        "from_empty": sum(1 for r in complete if r.old.length_chars == 0 < r.new.length_chars),
    }
    if ratios:
        out.update({name: round(_quantile(ratios, q), 3) for name, q in QUANTILES})
        out.update(min=round(ratios[0], 3), max=round(ratios[-1], 3))
    return out


def _quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _case_json(result: CaseResult) -> dict[str, Any]:
    versus = result.versus
    assert versus is not None
    shown = [c.as_json() for c in result.reported]
    if _meaning_reported(result):
        shown.append({"category": MEANING, "detail": f"similarity {versus.similarity:.2f}"})
    return {
        "id": result.case.id,
        "tags": list(result.case.tags),
        "inputs": result.case.inputs,
        "bucket": versus.bucket,
        "similarity": None if versus.similarity is None else round(versus.similarity, 3),
        "changes": shown,
        "noise": result.suppressed,
        "old": _answer_json(result.old),
        "new": _answer_json(result.new),
    }


def _answer_json(observation: Observation) -> dict[str, Any]:
    text = observation.text
    return {
        "text": text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "...",
        "tool_calls": [t.shown() for t in observation.tools],
        "refused": observation.refused,
        "gateway_refused": observation.gateway_refused,
    }
