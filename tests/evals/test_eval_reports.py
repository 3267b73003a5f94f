"""Reports people and CI read: valid JUnit, a self-contained HTML page, Markdown, and
progress lines in CI logs, from real runs."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from eval_harness import Setup, artifact, only_target, rows, suite_text, triage_prompt, write_jsonl

SCORERS = """\
  - {type: label_in, path: label, expected_from: expected, threshold: 0.2}
  - {type: llm_judge, rubric: "Is {{ticket}} routed to {{expected}}?"}"""


@pytest.fixture(scope="module", autouse=True)
def prompt(setup: Setup) -> None:
    setup.push_prompt("triage", triage_prompt())


def _dataset(tmp_path: Path) -> None:
    data = rows(12)
    data[3]["id"] = "t03\x0bvertical-tab"  # a control character XML 1.0 cannot hold
    data[5]["variables"]["ticket"] = "<script>alert('x')</script> & more"
    write_jsonl(tmp_path / "cases.jsonl", data)


def _check_junit(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()  # parses: the file is well-formed XML
    assert root.tag == "testsuites"
    for field in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(field, "-1")) == sum(int(s.get(field, "0")) for s in root)
    for suite in root:
        assert suite.tag == "testsuite"
        cases = list(suite)
        assert all(c.tag == "testcase" and c.get("classname") and c.get("name") for c in cases)
        assert int(suite.get("tests", "-1")) == len(cases)
        for kind, field in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert int(suite.get(field, "-1")) == sum(1 for c in cases if c.find(kind) is not None)
    return root


def test_junit_is_valid_xml_with_a_test_per_case_and_scorer(setup: Setup, tmp_path: Path) -> None:
    _dataset(tmp_path)
    (tmp_path / "suite.yaml").write_text(
        suite_text(scorers=SCORERS, extra="judge: {model: judge}\n", gate="{min_verdicts: 10}")
    )
    result = setup.cli(
        "eval", "run", "suite.yaml", "--junit", "j.xml", "--markdown", "s.md", "--output", "r.json",
        "--html", "r.html", "--no-store", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    run = artifact(tmp_path / "r.json")
    label = only_target(run)["scorers"]["label_in"]
    assert 0 < label["passed"] < label["scored"], "some cases fail, yet the gate passes"
    root = _check_junit(tmp_path / "j.xml")
    assert int(root.get("tests", "0")) == 12 * 2 + 1
    assert root.get("failures") == "0", "a passed gate is green in CI"
    names = [c.get("name") for c in root.iter("testcase")]
    assert "t03\ufffdvertical-tab" in names
    outs = [c.findtext("system-out") or "" for c in root.iter("testcase")]
    assert any(o.startswith("verdict: fail (expected") for o in outs)
    markdown = (tmp_path / "s.md").read_text()
    assert "| label_in |" in markdown and "| tag | cases |" in markdown


def test_a_failed_gate_fails_in_junit(setup: Setup, tmp_path: Path) -> None:
    _dataset(tmp_path)
    (tmp_path / "suite.yaml").write_text(
        suite_text(
            scorers=SCORERS.replace("threshold: 0.2", "threshold: 0.9"),
            extra="judge: {model: judge}\n",
        )
    )
    result = setup.cli("eval", "run", "suite.yaml", "--junit", "j.xml", "--no-store", cwd=tmp_path)
    assert result.returncode == 1
    root = _check_junit(tmp_path / "j.xml")
    failed = [c for c in root.iter("testcase") if c.find("failure") is not None]
    assert any(c.get("name") == "gate" for c in failed)
    assert any(c.get("classname", "").endswith(".label_in") for c in failed)
    assert not any(c.get("classname", "").endswith(".llm_judge") for c in failed)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.scripts = 0
        self.rows = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") or (value and re.match(r"\s*(https?:)?//", value)):
                self.external.append(f"{tag} {name}={value}")
        if tag == "link":
            self.external.append("link")
        if tag == "script":
            self.scripts += 1
        if tag == "tr" and ("class", "case") in attrs:
            self.rows += 1


def test_the_html_report_is_self_contained_and_escapes_what_it_shows(
    setup: Setup, tmp_path: Path
) -> None:
    _dataset(tmp_path)
    (tmp_path / "suite.yaml").write_text(
        suite_text(scorers=SCORERS, extra="judge: {model: judge}\n", gate="{min_verdicts: 10}")
    )
    result = setup.cli(
        "eval", "run", "suite.yaml", "--html", "out/r.html", "--no-store", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (tmp_path / "out" / "r.html").read_text()
    page = _Page()
    page.feed(text)
    assert page.external == [] and page.scripts == 1
    assert page.rows == 12
    assert "<script>alert" not in text and "&lt;script&gt;alert" in text
    for needle in ("95% interval", 'id="q"', 'id="v"', "gate passed", "tag</th>", "llm_judge"):
        assert needle in text


def test_progress_lines_in_ci_cover_the_calls_and_the_judging(setup: Setup, tmp_path: Path) -> None:
    _dataset(tmp_path)
    (tmp_path / "suite.yaml").write_text(
        suite_text(scorers=SCORERS, extra="judge: {model: judge}\n", gate="{min_verdicts: 10}")
    )
    result = setup.cli(
        "eval",
        "run",
        "suite.yaml",
        "--no-store",
        "--no-cache",
        "--progress-every",
        "0",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = [x for x in result.stderr.splitlines() if x.startswith("triage: calls")]
    assert len(lines) >= 12
    assert lines[-1].startswith("triage: calls 12/12, scored 12/12 cases")
    scored = [int(re.search(r"scored (\d+)/", x).group(1)) for x in lines]  # type: ignore[union-attr]
    assert scored == sorted(scored) and len(set(scored)) > 2, "judging shows progress too"
    assert "\r" not in result.stderr, "no terminal bar in a CI log"
