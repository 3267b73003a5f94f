"""`--html FILE`: one self-contained page (no external assets) a person reads after a run.

The summary and gate reasons, per target every scorer's pass rate and mean with their 95%
intervals drawn as bars, the per-tag breakdown, and every case with its inputs, outputs,
verdicts and reasons, filterable by text, target, scorer, verdict and tag with a few lines
of inline JavaScript. Every value from the run is escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from pilothouse.evals.report import NO_VERDICTS, headline, pct, reasons, tag_rows

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2327;background:#fff}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
.pass{color:#0a7d32}.fail{color:#b3261e}.invalid{color:#8a5a00}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #d0d7de;padding:4px 8px;
vertical-align:top;text-align:left}th{background:#f6f8fa}
.bar{position:relative;width:160px;height:10px;background:#eef1f4;border-radius:5px}
.bar span{position:absolute;top:0;height:10px;background:#8fb8de;border-radius:5px}
.bar i{position:absolute;top:-3px;width:2px;height:16px;background:#1d2327}
.badge{display:inline-block;padding:0 6px;margin:1px;border-radius:8px;font-size:12px;border:1px solid}
.badge.pass{border-color:#0a7d32}.badge.fail{border-color:#b3261e}.badge.invalid{border-color:#8a5a00}
pre{white-space:pre-wrap;margin:0;max-width:48rem;font-size:12px}
#filters{position:sticky;top:0;background:#fff;padding:.5rem 0;border-bottom:1px solid #d0d7de}
#filters input,#filters select{margin-right:.5rem}
"""

_SCRIPT = """
(function(){
  const q=document.getElementById('q'),t=document.getElementById('t'),s=document.getElementById('s'),
        v=document.getElementById('v'),g=document.getElementById('g'),n=document.getElementById('n');
  const rows=[...document.querySelectorAll('tr.case')];
  function apply(){
    const text=q.value.toLowerCase();let shown=0;
    for(const r of rows){
      const verdicts=JSON.parse(r.dataset.verdicts);
      const picked=s.value?[verdicts[s.value]]:Object.values(verdicts);
      const ok=(!text||r.textContent.toLowerCase().includes(text))
        &&(!t.value||r.dataset.target===t.value)
        &&(!g.value||r.dataset.tags.split(' ').includes(g.value))
        &&(!v.value||picked.includes(v.value));
      r.hidden=!ok;if(ok)shown++;
    }
    n.textContent=shown+' of '+rows.length+' shown';
  }
  for(const el of [q,t,s,v,g])el.addEventListener('input',apply);
  apply();
})();
"""


def _bar(low: float | None, high: float | None, point: float | None) -> str:
    if low is None or high is None or point is None:
        return ""
    return (
        f'<div class="bar" title="95% interval {pct(low)} to {pct(high)}">'
        f'<span style="left:{low * 100:.1f}%;width:{max(0.5, (high - low) * 100):.1f}%"></span>'
        f'<i style="left:{point * 100:.1f}%"></i></div>'
    )


def _scorer_table(target: dict[str, Any]) -> str:
    rows = []
    for key, s in target["scorers"].items():
        ci = s["pass_rate_ci95"] or [None, None]
        mci = s["mean_ci95"] or [None, None]
        rate = NO_VERDICTS if s["pass_rate"] is None else pct(s["pass_rate"])
        gate = ("ok" if s["ok"] else "FAIL") if s["gated"] else "-"
        why = "<br>".join(escape(r) for r in s["reasons"])
        mean = "-" if s["mean"] is None else f"{s['mean']:.3f}"
        rows.append(
            f"<tr><td>{escape(key)}</td><td>{rate}</td><td>{_bar(ci[0], ci[1], s['pass_rate'])}"
            f"{'' if ci[0] is None else f'{pct(ci[0])} to {pct(ci[1])}'}</td>"
            f"<td>{mean}</td>"
            f"<td>{_bar(mci[0], mci[1], s['mean'])}</td>"
            f"<td>{s['scored']}/{s['cases']}</td><td>{s['invalid']}</td>"
            f'<td class="{"pass" if gate == "ok" else "fail" if gate == "FAIL" else ""}">{gate}'
            f"{'<br>' + why if why else ''}</td></tr>"
        )
    return (
        "<table><tr><th>scorer</th><th>pass rate</th><th>95% interval</th><th>mean</th>"
        "<th>mean 95% interval</th><th>valid</th><th>invalid</th><th>gate</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _tag_table(target: dict[str, Any]) -> str:
    rows = tag_rows(target)
    if not rows:
        return ""
    keys = list(target["scorers"])
    head = "".join(f"<th>{escape(k)}</th>" for k in keys)
    body = "".join(
        f"<tr><td>{escape(r['tag'])}</td><td>{r['cases']}</td>"
        + "".join(f"<td>{escape(str(r.get(k, '-')))}</td>" for k in keys)
        + "</tr>"
        for r in rows
    )
    return f"<table><tr><th>tag</th><th>cases</th>{head}</tr>{body}</table>"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)


def _status(verdict: dict[str, Any]) -> str:
    return "invalid" if verdict["invalid"] else ("pass" if verdict["passed"] else "fail")


def _case_rows(artifact: dict[str, Any]) -> str:
    out = []
    for case in artifact["results"]["cases"]:
        for name, result in case["targets"].items():
            verdicts = {k: _status(v) for k, v in result["scores"].items()}
            badges = "".join(
                f'<span class="badge {verdicts[k]}" title="{escape(v.get("reason") or "")}">'
                f"{escape(k)}: {verdicts[k]}</span>"
                + (f"<br><small>{escape(v['reason'])}</small>" if v.get("reason") else "")
                + "<br>"
                for k, v in result["scores"].items()
            )
            outputs = "".join(
                f"<pre>{escape(o['error'] if o.get('error') else _text(o.get('text') or o.get('tool_calls') or ''))}</pre>"
                for o in result["outputs"]
            )
            inputs = escape(_text(case.get("inputs") or {}))
            expected = "" if case.get("expected") is None else escape(_text(case["expected"]))
            out.append(
                f'<tr class="case" data-target="{escape(name)}" '
                f'data-tags="{escape(" ".join(case["tags"]))}" '
                f"data-verdicts='{escape(json.dumps(verdicts))}'>"
                f"<td>{escape(str(case['id']))}<br><small>{escape(', '.join(case['tags']))}</small></td>"
                f"<td>{escape(name)}</td><td><pre>{inputs}</pre></td><td><pre>{expected}</pre></td>"
                f"<td>{outputs}</td><td>{badges}</td></tr>"
            )
    return "".join(out)


def _options(values: list[str], any_label: str) -> str:
    return f'<option value="">{any_label}</option>' + "".join(
        f'<option value="{escape(v)}">{escape(v)}</option>' for v in values
    )


def render(artifact: dict[str, Any]) -> str:
    """The whole page as one string."""
    summary = artifact["summary"]
    verdict = "passed" if artifact["passed"] else "failed"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Eval {escape(artifact['suite'])}: {verdict}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Eval <code>{escape(artifact['suite'])}</code>: "
        f'<span class="{"pass" if artifact["passed"] else "fail"}">gate {verdict}</span></h1>',
        f"<p>{escape(headline(artifact))}</p>",
    ]
    why = reasons(artifact)
    if why:
        parts.append("<ul>" + "".join(f'<li class="fail">{escape(r)}</li>' for r in why) + "</ul>")
    manifest_targets = {t["name"]: t for t in artifact["manifest"]["targets"]}
    for name, target in summary["targets"].items():
        info = manifest_targets.get(name, {})
        role = (
            "candidate"
            if info.get("candidate")
            else ("gated" if target["gated"] else "reported only")
        )
        parts.append(
            f"<h2>{escape(name)} <small>({role}; {escape(str(info.get('prompt')))} on "
            f"{escape(', '.join(info.get('provider_models') or []) or 'no answers')}; "
            f"{target['errors']} errors)</small></h2>"
        )
        parts.append(_scorer_table(target))
        parts.append(_tag_table(target))
    tags = sorted({t for c in artifact["results"]["cases"] for t in c["tags"]})
    scorers = [s["key"] for s in artifact["manifest"]["scorers"]]
    parts.append(
        '<h2>Cases</h2><div id="filters"><input id="q" type="search" placeholder="search text">'
        f'<select id="t">{_options(list(summary["targets"]), "every target")}</select>'
        f'<select id="s">{_options(scorers, "any scorer")}</select>'
        '<select id="v"><option value="">any verdict</option><option value="fail">fail</option>'
        '<option value="invalid">invalid</option><option value="pass">pass</option></select>'
        f'<select id="g">{_options(tags, "any tag")}</select><span id="n"></span></div>'
        "<table><tr><th>case</th><th>target</th><th>inputs</th><th>expected</th>"
        "<th>output</th><th>verdicts</th></tr>" + _case_rows(artifact) + "</table>"
    )
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "".join(parts)
