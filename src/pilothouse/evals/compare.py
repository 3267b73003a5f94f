"""Comparing two runs (or two targets of one run) case by case, and deciding a regression.

Runs are compared only when they are comparable: the same dataset, cases, scorers and
repeat reduction (otherwise a difference may be the data's, not the model's). Per scorer
the test matches what is compared: the exact McNemar test on paired pass/fail verdicts,
and a paired t-test (or Wilcoxon signed-rank) on scores that are not just 0 or 1. A
regression is a drop of at least `min_delta` with p below `alpha` on the scorer's gating
metric (its mean when it gates on `min_mean` alone, else its pass rate).
"""

from __future__ import annotations

from typing import Any

from pilothouse.evals import stats


class Incomparable(ValueError):
    """The runs differ in what was measured; `problems` says how."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def target_names(artifact: dict[str, Any]) -> list[str]:
    return [t["name"] for t in artifact.get("manifest", {}).get("targets") or []] or ["(single)"]


def pick_target(artifact: dict[str, Any], name: str | None) -> str:
    """The target of `artifact` to compare: `name`, else its only target, else its candidate."""
    targets = artifact.get("manifest", {}).get("targets") or []
    names = [t["name"] for t in targets]
    if not targets:  # an artifact from before matrices: one unnamed target
        if name is not None:
            raise Incomparable([f"run {artifact['id']} has a single unnamed target"])
        return "(single)"
    if name is not None:
        if name not in names:
            raise Incomparable(
                [f"run {artifact['id']} has no target {name!r}; it has {', '.join(names)}"]
            )
        return name
    if len(names) == 1:
        return names[0]
    candidates = [t["name"] for t in targets if t.get("candidate")]
    if len(candidates) == 1:
        return candidates[0]
    raise Incomparable(
        [
            f"run {artifact['id']} has {len(names)} targets ({', '.join(names)}): name one as RUN#TARGET"
        ]
    )


def case_results(artifact: dict[str, Any], target: str) -> dict[str, dict[str, Any]]:
    """Case id -> {tags, scores} for one target of a run."""
    out = {}
    for case in artifact["results"]["cases"]:
        entry = case["scores"] if target == "(single)" else case["targets"][target]["scores"]
        out[str(case["id"])] = {"tags": case.get("tags") or [], "scores": entry}
    return out


def problems(a: dict[str, Any], b: dict[str, Any], target_a: str, target_b: str) -> list[str]:
    """Why the two runs do not measure the same thing (empty: comparable)."""
    ma, mb = a["manifest"], b["manifest"]
    out = []
    hash_a, hash_b = (ma.get("dataset") or {}).get("hash"), (mb.get("dataset") or {}).get("hash")
    if hash_a != hash_b:
        out.append(f"different datasets ({str(hash_a)[:12]} vs {str(hash_b)[:12]})")
    ids_a, ids_b = set(case_results(a, target_a)), set(case_results(b, target_b))
    if ids_a != ids_b:
        out.append(
            f"different cases ({len(ids_a - ids_b)} only in A, {len(ids_b - ids_a)} only in B)"
        )
    scorers_a = {s["key"]: (s["type"], s.get("options")) for s in ma.get("scorers") or []}
    scorers_b = {s["key"]: (s["type"], s.get("options")) for s in mb.get("scorers") or []}
    if scorers_a != scorers_b:
        differ = sorted(
            k for k in scorers_a.keys() | scorers_b.keys() if scorers_a.get(k) != scorers_b.get(k)
        )
        out.append(f"different scorers ({', '.join(differ)})")
    for field in ("repeat", "reducer", "ties"):
        if ma.get(field) != mb.get(field):
            out.append(f"different {field} ({ma.get(field)} vs {mb.get(field)})")
    return out


def compare(
    a: dict[str, Any],
    b: dict[str, Any],
    *,
    target_a: str | None = None,
    target_b: str | None = None,
    alpha: float = 0.05,
    min_delta: float = 0.0,
    test: stats.ScoreTest = "t",
    allow_incomparable: bool = False,
) -> dict[str, Any]:
    """B against A (deltas are B - A) over the cases both scored; raises Incomparable.

    With `allow_incomparable`, runs that differ are compared over their common cases and
    scorers, and the result lists the differences under `problems`.
    """
    name_a, name_b = pick_target(a, target_a), pick_target(b, target_b)
    found = problems(a, b, name_a, name_b)
    if found and not allow_incomparable:
        raise Incomparable(found)
    cases_a, cases_b = case_results(a, name_a), case_results(b, name_b)
    common = sorted(set(cases_a) & set(cases_b))
    gating = {s["key"]: s for s in b["manifest"].get("scorers") or []}
    keys = [
        k
        for k in gating
        if common and all(k in cases_a[i]["scores"] and k in cases_b[i]["scores"] for i in common)
    ]
    scorers = {}
    for key in keys:
        pairs = [(i, cases_a[i]["scores"][key], cases_b[i]["scores"][key]) for i in common]
        scorers[key] = _scorer(pairs, gating.get(key, {}), alpha, min_delta, test)
    tags = sorted({t for i in common for t in cases_b[i]["tags"]})
    by_tag = {}
    for tag in tags:
        tagged = [i for i in common if tag in cases_b[i]["tags"]]
        row = {}
        for key in scorers:
            pairs = [(i, cases_a[i]["scores"][key], cases_b[i]["scores"][key]) for i in tagged]
            valid = [(x, y) for _, x, y in pairs if not x["invalid"] and not y["invalid"]]
            test_result = stats.mcnemar_exact(
                [bool(x["passed"]) for x, _ in valid], [bool(y["passed"]) for _, y in valid]
            )
            row[key] = {
                "paired_cases": len(valid),
                "pass_rate_a": _rate([x for x, _ in valid]),
                "pass_rate_b": _rate([y for _, y in valid]),
                "delta": test_result["delta"],
                "p_value": test_result["p_value"],
            }
        by_tag[tag] = row
    regressions = sorted(k for k, s in scorers.items() if s["regression"])
    return {
        "run_a": a["id"],
        "run_b": b["id"],
        "target_a": name_a,
        "target_b": name_b,
        "problems": found,
        "common_cases": len(common),
        "alpha": alpha,
        "min_delta": min_delta,
        "scorers": scorers,
        "tags": by_tag,
        "regressions": regressions,
    }


def _rate(verdicts: list[dict[str, Any]]) -> float | None:
    return sum(1 for v in verdicts if v["passed"]) / len(verdicts) if verdicts else None


def _scorer(
    pairs: list[tuple[str, dict[str, Any], dict[str, Any]]],
    spec: dict[str, Any],
    alpha: float,
    min_delta: float,
    test: stats.ScoreTest,
) -> dict[str, Any]:
    valid = [(i, x, y) for i, x, y in pairs if not x["invalid"] and not y["invalid"]]
    passed_a = [bool(x["passed"]) for _, x, _ in valid]
    passed_b = [bool(y["passed"]) for _, _, y in valid]
    pass_test = stats.mcnemar_exact(passed_a, passed_b)
    values = [(x["value"], y["value"]) for _, x, y in valid]
    values = [(float(x), float(y)) for x, y in values if x is not None and y is not None]
    binary = all(x in (0.0, 1.0) and y in (0.0, 1.0) for x, y in values)
    score_test = (
        None
        if binary or not values
        else stats.paired_scores([x for x, _ in values], [y for _, y in values], test)
    )
    metric = (
        "mean"
        if spec.get("min_mean") is not None and spec.get("threshold") is None and score_test
        else "pass_rate"
    )
    deciding = score_test if metric == "mean" and score_test else pass_test
    delta, p = float(deciding["delta"]), float(deciding["p_value"])
    flips = stats.flipped(
        {i: bool(x["passed"]) for i, x, _ in valid}, {i: bool(y["passed"]) for i, _, y in valid}
    )
    return {
        "paired_cases": len(valid),
        "pass_rate_a": _rate([x for _, x, _ in valid]),
        "pass_rate_b": _rate([y for _, _, y in valid]),
        "mean_a": sum(x for x, _ in values) / len(values) if values else None,
        "mean_b": sum(y for _, y in values) / len(values) if values else None,
        "pass_test": pass_test,
        "score_test": score_test,
        "metric": metric,
        "delta": delta,
        "p_value": p,
        "regression": delta < 0 and -delta >= min_delta and p < alpha,
        **flips,
    }
