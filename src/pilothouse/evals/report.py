"""Reading results: the per-target tables, the headline, Markdown and JUnit XML for CI.

Zero valid verdicts read "no verdicts", never 0 %. JUnit holds one test per case and
scorer (and one per target for the gate); a case's failed verdict is a JUnit failure only
when its scorer failed the gate, so a passed gate never shows red in CI.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree as ET

NO_VERDICTS = "no verdicts"
COLUMNS = ["scorer", "pass_rate", "ci95", "mean", "scored", "invalid", "gate_on", "gate"]


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def summary_rows(target: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per scorer of one target's summary."""
    rows = []
    for key, s in target["scorers"].items():
        ci = s["pass_rate_ci95"]
        mean = "-" if s["mean"] is None else f"{s['mean']:.3f}"
        if s["mean_ci95"] is not None and s["mean_ci95"][0] != s["mean_ci95"][1]:
            mean += f" ({s['mean_ci95'][0]:.2f}-{s['mean_ci95'][1]:.2f})"
        gate_on = []
        if s["threshold"] is not None:
            gate_on.append(f"pass>={pct(s['threshold'])}")
        if s["min_mean"] is not None:
            gate_on.append(f"mean>={s['min_mean']:.2f}")
        rows.append(
            {
                "scorer": key,
                "pass_rate": NO_VERDICTS if s["pass_rate"] is None else pct(s["pass_rate"]),
                "ci95": "-" if ci is None else f"{pct(ci[0])}-{pct(ci[1])}",
                "mean": mean,
                "scored": f"{s['scored']}/{s['cases']}",
                "invalid": s["invalid"],
                "gate_on": ", ".join(gate_on) or "-",
                "gate": ("ok" if s["ok"] else "FAIL") if s["gated"] else "-",
            }
        )
    return rows


def tag_rows(target: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per tag: its case count and each scorer's pass rate (valid verdicts)."""
    rows = []
    for tag, entry in target["tags"].items():
        row: dict[str, Any] = {"tag": tag, "cases": entry["cases"]}
        for key, s in entry["scorers"].items():
            row[key] = NO_VERDICTS if s["pass_rate"] is None else f"{pct(s['pass_rate'])}"
        rows.append(row)
    return rows


def headline(artifact: dict[str, Any]) -> str:
    summary = artifact["summary"]
    verdict = "PASSED" if artifact["passed"] else "FAILED"
    cache = summary["cache"]
    cost = summary["cost_usd"]
    served = []
    if cache["replayed"]:
        served.append(f"{cache['replayed']} replayed")
    if cache["resumed"]:
        served.append(f"{cache['resumed']} resumed")
    if cache["enabled"]:
        served.append(f"cache {cache['hits']} hits, {cache['misses']} misses")
    else:
        served.append("cache off")
    errors = sum(t["errors"] for t in summary["targets"].values())
    n_targets = len(summary["targets"])
    kinds = cache.get("by_kind", {})
    others = [
        f"{sum(v for k, v in kinds.items() if k.startswith(kind + ':'))} {label}"
        for kind, label in (("judge", "judge"), ("embed", "embedding"))
        if any(k.startswith(kind + ":") for k in kinds)
    ]
    return (
        f"{artifact['suite']}: gate {verdict}; "
        + (f"{n_targets} targets, " if n_targets > 1 else "")
        + f"{summary['cases']} cases, {summary['calls']} target calls"
        + "".join(f" + {o}" for o in others)
        + f" ({'; '.join(served)}), "
        f"{errors} errors, cost ${cost['total']:.4f} (judge ${cost['judge']:.4f}, "
        f"embeddings ${cost['embeddings']:.4f}"
        + (
            f", {cost['unpriced_embedding_calls']} unpriced"
            if cost["unpriced_embedding_calls"]
            else ""
        )
        + f"); run {artifact['id']}"
    )


def reasons(artifact: dict[str, Any]) -> list[str]:
    """Why the gate failed, one line per reason, prefixed by the target when several."""
    targets = artifact["summary"]["targets"]
    out = []
    for name, target in targets.items():
        if not target["gated"]:
            continue
        prefix = f"{name}: " if len(targets) > 1 else ""
        out += [prefix + why for why in target["reasons"]]
    aborted = artifact.get("stats", {}).get("aborted")
    if aborted:
        out.append(f"run stopped calling: {aborted}")
    return out


def markdown(artifact: dict[str, Any]) -> str:
    lines = [
        f"### Eval `{artifact['suite']}`: {'✅ passed' if artifact['passed'] else '❌ failed'}",
        "",
    ]
    parts = {t["name"]: t for t in artifact["manifest"]["targets"]}
    for name, target in artifact["summary"]["targets"].items():
        part = parts.get(name, {})
        role = (
            "candidate" if part.get("candidate") else ("gated" if target["gated"] else "reported")
        )
        lines.append(
            f"**{_md(name)}** ({role}; `{part.get('prompt')}` on "
            f"{', '.join(part.get('provider_models') or []) or 'no answers'}): "
            f"{'passed' if target['passed'] else 'failed'}"
        )
        lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for row in summary_rows(target):
            lines.append("| " + " | ".join(_md(str(row[c])) for c in COLUMNS) + " |")
        tags = tag_rows(target)
        if tags:
            keys = list(target["scorers"])
            lines += [
                "",
                "| tag | cases | " + " | ".join(keys) + " |",
                "|" + "---|" * (2 + len(keys)),
            ]
            for row in tags:
                lines.append(
                    f"| {_md(row['tag'])} | {row['cases']} | "
                    + " | ".join(str(row.get(k, "-")) for k in keys)
                    + " |"
                )
        lines.append("")
    why = reasons(artifact)
    if why:
        lines += ["Why the gate failed:", ""] + [f"- {_md(r)}" for r in why] + [""]
    baseline = artifact["summary"].get("baseline")
    if baseline:
        lines.append(
            f"Against baseline `{baseline['run_a']}`: "
            + (
                f"significant regression in {', '.join(baseline['regressions'])}"
                if baseline["regressions"]
                else "no significant regression"
            )
        )
        lines.append("")
    lines += [headline(artifact), ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


# Characters XML 1.0 cannot hold at all (ElementTree would write them and break the file).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: Any) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def junit(artifact: dict[str, Any]) -> str:
    """JUnit XML: a testsuite per target, a testcase per (case, scorer), one for the gate.

    A failed verdict is a `<failure>` only when its scorer failed the gate; otherwise it is
    written to the test's output. An invalid verdict is `<skipped>` (an `<error>` when its
    scorer failed the gate). Targets the gate does not apply to never fail.
    """
    root = ET.Element("testsuites", name=_xml(f"pilothouse.eval.{artifact['suite']}"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for name, target in artifact["summary"]["targets"].items():
        suite = ET.SubElement(
            root, "testsuite", name=_xml(f"pilothouse.eval.{artifact['suite']}.{name}")
        )
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for case in artifact["results"]["cases"]:
            scores = case["targets"][name]["scores"]
            for key, verdict in scores.items():
                counts["tests"] += 1
                scorer_failed = target["gated"] and not target["scorers"][key]["ok"]
                element = ET.SubElement(
                    suite,
                    "testcase",
                    classname=_xml(f"{artifact['suite']}.{name}.{key}"),
                    name=_xml(case["id"]),
                    time="0",
                )
                reason = _xml(verdict.get("reason") or "")
                if verdict["invalid"]:
                    kind = "error" if scorer_failed else "skipped"
                    counts["errors" if scorer_failed else "skipped"] += 1
                    ET.SubElement(element, kind, message=f"invalid verdict: {reason}")
                elif not verdict["passed"]:
                    if scorer_failed:
                        counts["failures"] += 1
                        ET.SubElement(element, "failure", message=reason or "did not pass")
                    else:
                        out = ET.SubElement(element, "system-out")
                        out.text = (
                            f"verdict: fail ({reason or 'no reason'}); the scorer's gate passed"
                        )
        gate = ET.SubElement(
            suite,
            "testcase",
            classname=_xml(f"{artifact['suite']}.{name}.gate"),
            name="gate",
            time="0",
        )
        counts["tests"] += 1
        if target["gated"] and not target["passed"]:
            counts["failures"] += 1
            failure = ET.SubElement(
                gate, "failure", message=_xml("; ".join(target["reasons"])[:1000])
            )
            failure.text = _xml("\n".join(target["reasons"]))
        for field, value in counts.items():
            suite.set(field, str(value))
            totals[field] += value
    for field, value in totals.items():
        root.set(field, str(value))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
