"""Reading results: the summary table, JUnit XML and Markdown for CI, and run comparison."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from pilothouse.evals import stats


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def summary_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, s in summary["scorers"].items():
        low, high = s["pass_rate_ci95"]
        rows.append(
            {
                "scorer": key,
                "pass_rate": _pct(s["pass_rate"]),
                "ci95": f"{_pct(low)}-{_pct(high)}",
                "mean": "-" if s["mean"] is None else f"{s['mean']:.3f}",
                "scored": f"{s['scored']}/{s['cases']}",
                "invalid": s["invalid"],
                "threshold": "-" if s["threshold"] is None else _pct(s["threshold"]),
                "gate": "ok" if s["ok"] else "FAIL",
            }
        )
    return rows


def headline(artifact: dict[str, Any]) -> str:
    summary = artifact["summary"]
    gate = summary["gate"]
    verdict = "PASSED" if artifact["passed"] else "FAILED"
    reasons = [name for name in ("thresholds", "invalid_rate", "error_rate") if not gate[name]]
    why = f" ({', '.join(reasons)})" if reasons else ""
    return (
        f"{artifact['suite']}: gate {verdict}{why}; {summary['cases']} cases, {summary['calls']} calls, "
        f"{summary['errors']} errors, invalid {_pct(summary['invalid_rate'])}, "
        f"cost ${summary['cost_usd']:.4f}; run {artifact['id']}"
    )


def markdown(artifact: dict[str, Any]) -> str:
    lines = [
        f"### Eval `{artifact['suite']}`: {'✅ passed' if artifact['passed'] else '❌ failed'}",
        "",
    ]
    target = artifact["manifest"]["target"]
    lines.append(
        f"Target: `{target.get('route') or target.get('prompt')}` "
        f"({', '.join(target.get('provider_models') or []) or 'no answers'}); run `{artifact['id']}`"
    )
    lines += [
        "",
        "| scorer | pass rate | 95% CI | mean | scored | invalid | threshold | gate |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in summary_rows(artifact["summary"]):
        lines.append(
            "| "
            + " | ".join(
                str(row[k])
                for k in (
                    "scorer",
                    "pass_rate",
                    "ci95",
                    "mean",
                    "scored",
                    "invalid",
                    "threshold",
                    "gate",
                )
            )
            + " |"
        )
    lines += ["", headline(artifact), ""]
    return "\n".join(lines)


def junit(artifact: dict[str, Any]) -> str:
    """One test case per (case, scorer); invalid verdicts are reported as skipped."""
    cases = artifact["results"]["cases"]
    suite = ET.Element("testsuite", name=f"pilothouse.eval.{artifact['suite']}")
    failures = skipped = total = 0
    for case in cases:
        for key, verdict in case["scores"].items():
            total += 1
            element = ET.SubElement(
                suite, "testcase", classname=f"{artifact['suite']}.{key}", name=case["id"]
            )
            if verdict["invalid"]:
                skipped += 1
                ET.SubElement(element, "skipped", message=f"invalid: {verdict.get('reason') or ''}")
            elif not verdict["passed"]:
                failures += 1
                ET.SubElement(element, "failure", message=verdict.get("reason") or "did not pass")
    gate = ET.SubElement(suite, "testcase", classname=f"{artifact['suite']}.gate", name="gate")
    total += 1
    if not artifact["passed"]:
        failures += 1
        ET.SubElement(gate, "failure", message=headline(artifact))
    suite.set("tests", str(total))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Per-scorer deltas (B - A) with a paired test over the cases both runs scored."""
    cases_a = {c["id"]: c for c in a["results"]["cases"]}
    cases_b = {c["id"]: c for c in b["results"]["cases"]}
    common = sorted(set(cases_a) & set(cases_b))
    out = {}
    for key in sorted(set(a["summary"]["scorers"]) & set(b["summary"]["scorers"])):
        pairs = [(cases_a[i]["scores"][key], cases_b[i]["scores"][key]) for i in common]
        pairs = [(x, y) for x, y in pairs if not x["invalid"] and not y["invalid"]]
        values_a = [float(x["value"]) for x, _ in pairs]
        values_b = [float(y["value"]) for _, y in pairs]
        test = (
            stats.paired_comparison(values_a, values_b)
            if pairs
            else {"delta_mean": 0.0, "p_value": 1.0, "test": "none"}
        )
        flips = stats.flipped(
            {
                i: bool(cases_a[i]["scores"][key]["passed"])
                for i in common
                if not cases_a[i]["scores"][key]["invalid"]
            },
            {
                i: bool(cases_b[i]["scores"][key]["passed"])
                for i in common
                if not cases_b[i]["scores"][key]["invalid"]
            },
        )
        out[key] = {
            "pass_rate_a": a["summary"]["scorers"][key]["pass_rate"],
            "pass_rate_b": b["summary"]["scorers"][key]["pass_rate"],
            "paired_cases": len(pairs),
            **test,
            **flips,
        }
    return {"run_a": a["id"], "run_b": b["id"], "common_cases": len(common), "scorers": out}
