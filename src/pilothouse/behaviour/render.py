"""A diff report for people: an aligned table for a terminal, Markdown for a PR comment.
Both show the same things in the same order; the JSON report holds everything."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

TITLES = {
    "json_validity": "json validity",
    "json_keys": "json keys",
    "label": "label",
    "tool_calls": "tool calls",
    "refusal": "refusal",
    "gateway_refusal": "gateway refusal",
    "meaning": "meaning only",
}
TABLE_ANSWER_CHARS = 300


def table(report: dict[str, Any], *, answer_chars: int = TABLE_ANSWER_CHARS) -> str:
    """The report as plain text with aligned columns."""
    lines = [_heading(report), ""]
    lines += _aligned(_behaviour_rows(report))
    lines += ["", _meaning_line(report), _length_line(report)]
    labels = report.get("labels")
    if labels:
        lines += ["", f"labels at {labels['path']}, old (rows) -> new (columns):"]
        lines += _aligned(_matrix_rows(labels), upper=False)
    lines += _incomplete_lines(report)
    changed = report["changed_cases"]
    if changed:
        lines += ["", f"changed cases ({len(changed)}):"]
        for case in changed:
            lines.append(f"  {_case_title(case)}: {_changes_text(case)}")
            lines.append(f"    old: {_answer_text(case['old'], answer_chars)}")
            lines.append(f"    new: {_answer_text(case['new'], answer_chars)}")
    rephrased = report["rephrased_cases"]
    if rephrased:
        lines += ["", f"rephrased cases ({len(rephrased)}): " + _rephrased_ids(rephrased)]
    lines += ["", verdict(report)]
    return "\n".join(lines) + "\n"


def markdown(report: dict[str, Any], *, answer_chars: int = 1000) -> str:
    """The report as GitHub-flavoured Markdown: tables, then the changed cases."""
    lines = [f"### Behaviour diff: {_sides(report)}", "", _context(report), ""]
    lines += _md_table(_behaviour_rows(report))
    lines += ["", f"**{_meaning_line(report)}**", "", _length_line(report)]
    labels = report.get("labels")
    if labels:
        lines += ["", f"Labels at `{labels['path']}`, old (rows) → new (columns):", ""]
        lines += _md_table(_matrix_rows(labels))
    lines += _incomplete_lines(report)
    changed = report["changed_cases"]
    if changed:
        lines += ["", f"#### Changed cases ({len(changed)})", ""]
        for case in changed:
            lines.append(f"- **{_case_title(case)}**: {_escape(_changes_text(case))}")
            for side in ("old", "new"):
                text = _answer_text(case[side], answer_chars).replace("`", "'")
                lines.append(f"  - {side}: `{text}`")
    rephrased = report["rephrased_cases"]
    if rephrased:
        lines += ["", f"Rephrased cases ({len(rephrased)}): {_rephrased_ids(rephrased)}"]
    lines += ["", f"**{verdict(report)}**"]
    return "\n".join(lines) + "\n"


def verdict(report: dict[str, Any]) -> str:
    """One line: what the exit status will mean."""
    incomplete = len(report["incomplete"])
    changed = len(report["changed_cases"])
    beyond = " beyond the noise floor" if report["noise_floor"] else ""
    if changed:
        text = f"behaviour changed in {changed} of {report['compared']} compared cases{beyond}"
    else:
        text = f"no behaviour change in {report['compared']} compared cases{beyond}"
        if report["meaning"].get("rephrased"):
            text += f" ({report['meaning']['rephrased']} rephrased)"
    if incomplete:
        text += f"; {incomplete} cases could not be compared (calls failed)"
    return text


def _sides(report: dict[str, Any]) -> str:
    return f"{report['old']['name']} -> {report['new']['name']}"


def _context(report: dict[str, Any]) -> str:
    dataset = report.get("dataset") or {}
    similarity = report["similarity"]
    measure = similarity["method"]
    if similarity.get("model"):
        measure += f" ({similarity['model']})"
    return (
        f"dataset {dataset.get('source')} ({report['cases']} cases, {report['compared']} "
        f"compared); similarity: {measure}, rephrased from {similarity['threshold']:.2f}"
        + ("; noise floor: the old side answered twice" if report["noise_floor"] else "")
    )


def _heading(report: dict[str, Any]) -> str:
    return f"{_sides(report)}\n{_context(report)}"


def _behaviour_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = [["behaviour", "changed", "noise floor", "reported"]]
    for kind, entry in report["categories"].items():
        noise = "-" if entry["noise"] is None else str(entry["noise"])
        if entry.get("within_noise"):
            noise += " (within)"
        title = TITLES.get(kind, kind)
        if kind == "label" and report.get("label_path"):
            title = f"label ({report['label_path']})"
        rows.append([title, str(entry["changed"]), noise, str(entry["reported"])])
    return rows


def _meaning_line(report: dict[str, Any]) -> str:
    meaning = report["meaning"]
    return "meaning: " + ", ".join(f"{k} {v}" for k, v in meaning.items())


def _length_line(report: dict[str, Any]) -> str:
    ratio = report["length_ratio"]
    if not ratio.get("cases"):
        return "length ratio (new/old characters): no case to measure"
    quantiles = "  ".join(f"{k} {ratio[k]:.2f}" for k in ("p10", "p25", "p50", "p75", "p90"))
    extra = f", {ratio['from_empty']} from empty" if ratio.get("from_empty") else ""
    return (
        f"length ratio (new/old characters, {ratio['cases']} cases): {quantiles}  "
        f"(min {ratio['min']:.2f}, max {ratio['max']:.2f}{extra})"
    )


def _matrix_rows(labels: dict[str, Any]) -> list[list[str]]:
    matrix: dict[str, dict[str, int]] = labels["matrix"]
    columns = sorted({after for row in matrix.values() for after in row})
    rows = [["old \\ new", *columns]]
    for before, row in matrix.items():
        rows.append([before, *(str(row.get(after, 0)) for after in columns)])
    return rows


def _incomplete_lines(report: dict[str, Any]) -> list[str]:
    incomplete = report["incomplete"]
    if not incomplete:
        return []
    lines = ["", f"not compared ({len(incomplete)}; a call failed):"]
    lines += [f"  {item['id']}: {item['error']}" for item in incomplete[:20]]
    if len(incomplete) > 20:
        lines.append(f"  ... and {len(incomplete) - 20} more (the JSON report lists them all)")
    return lines


def _case_title(case: dict[str, Any]) -> str:
    tags = f" [{', '.join(case['tags'])}]" if case.get("tags") else ""
    return f"{case['id']}{tags}"


def _changes_text(case: dict[str, Any]) -> str:
    return "; ".join(f"{c['category']}: {c['detail']}" for c in case["changes"])


def _answer_text(answer: dict[str, Any], limit: int) -> str:
    if answer.get("gateway_refused"):
        return f"(refused by the gateway: {answer['gateway_refused']})"
    parts = [answer["text"]] if answer.get("text") else []
    parts += answer.get("tool_calls") or []
    text = " ".join(" | ".join(parts).split()) or "(empty)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rephrased_ids(cases: Sequence[dict[str, Any]], limit: int = 20) -> str:
    shown = ", ".join(f"{c['id']} ({c['similarity']:.2f})" for c in cases[:limit])
    return shown + (f", ... {len(cases) - limit} more" if len(cases) > limit else "")


def _aligned(rows: list[list[str]], *, upper: bool = True) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for index, row in enumerate(rows):
        cells = [c.upper() if index == 0 and upper else c for c in row]
        out.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return out


def _md_table(rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(_escape(c) for c in rows[0]) + " |"]
    out.append("|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|")
    out += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in rows[1:]]
    return out


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
