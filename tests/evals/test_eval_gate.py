"""The gate needs evidence and exit codes mean one thing each: real suites, the CLI as CI
runs it, the gateway and the simulator. Every defect of issue 11 about the gate and the
exit status has a test here that fails on the behaviour before it."""

from __future__ import annotations

import http.server
import json
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from eval_harness import (
    Setup,
    artifact,
    config,
    only_target,
    rows,
    suite_text,
    triage_prompt,
    write_jsonl,
)

from harness import free_port, start_gateway

JUDGED = """\
  - {type: label_in, path: label, labels: [billing, bug, question], threshold: 0.9}
  - {type: llm_judge, rubric: "Is the queue plausible for the ticket?", threshold: 0.85}"""


@pytest.fixture(scope="module", autouse=True)
def prompt(setup: Setup) -> None:
    setup.push_prompt("triage", triage_prompt())


def test_a_judge_invalid_29_times_of_30_fails_the_gate_and_says_why(
    setup: Setup, tmp_path: Path
) -> None:
    data = rows(30)
    data[7]["variables"]["ticket"] = "GOODCASE: the only ticket the judge grades"
    write_jsonl(tmp_path / "cases.jsonl", data)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        suite_text(
            scorers=JUDGED,
            extra="judge: {model: judge-flaky}\n",
            gate="{max_invalid_rate: 0.25}",  # the old pooled limit let 29/120 through
        )
    )
    result = setup.cli(
        "eval", "run", str(suite), "--output", "run.json", "--no-store", cwd=tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    judge = only_target(artifact(tmp_path / "run.json"))["scorers"]["llm_judge"]
    assert (judge["scored"], judge["invalid"], judge["pass_rate"]) == (1, 29, 1.0)
    assert not judge["ok"]
    assert "llm_judge: 1 valid verdict of 30; the gate needs at least 10" in result.stdout
    assert "29 of 30 verdicts invalid (96.7%, limit 25.0%)" in result.stdout
    assert "judge reply could not be parsed" in result.stdout


def test_zero_verdicts_read_no_verdicts_not_zero_percent(setup: Setup, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(10))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        suite_text(
            scorers=JUDGED.replace("threshold: 0.85", "threshold: 0.5"),
            extra="judge: {model: judge-flaky}\n",
        )
    )
    result = setup.cli(
        "eval", "run", str(suite), "--output", "run.json", "--no-store", cwd=tmp_path
    )
    assert result.returncode == 1
    judge = only_target(artifact(tmp_path / "run.json"))["scorers"]["llm_judge"]
    assert judge["pass_rate"] is None and judge["pass_rate_ci95"] is None
    line = next(x for x in result.stdout.splitlines() if x.startswith("llm_judge"))
    assert line.split()[1:4] == ["no", "verdicts", "-"], line


def test_a_tie_between_repeats_fails_unless_the_suite_says_otherwise(
    setup: Setup, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(20))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        suite_text(
            target="{prompt: triage@1, model: refuser}",
            extra="repeat: 2\nreducer: mean\n",
            scorers="  - {type: refusal, threshold: 0.5}",
        )
    )
    first = setup.cli("eval", "run", str(suite), "--output", "a.json", "--no-store", cwd=tmp_path)
    run = artifact(tmp_path / "a.json")
    verdicts = [
        c["targets"]["triage@1/refuser"]["scores"]["refusal"] for c in run["results"]["cases"]
    ]
    passes = [sum(r["passed"] for r in v["repeats"]) for v in verdicts]
    ties = passes.count(1)
    assert ties >= 3, "the model refuses half the time: some cases have one refusal in two"
    refusal = only_target(run)["scorers"]["refusal"]
    assert refusal["passed"] == passes.count(2)  # a tie is not a pass
    assert first.returncode == (0 if passes.count(2) / 20 >= 0.5 else 1)
    # The same answers with ties counted as passes: only the reduction changes.
    suite.write_text(suite.read_text().replace("reducer: mean\n", "reducer: mean\nties: pass\n"))
    second = setup.cli(
        "eval",
        "run",
        str(suite),
        "--rescore",
        "a.json",
        "--output",
        "b.json",
        "--no-store",
        cwd=tmp_path,
    )
    assert second.returncode in (0, 1), second.stderr
    rescored = artifact(tmp_path / "b.json")
    assert only_target(rescored)["scorers"]["refusal"]["passed"] == passes.count(2) + ties
    assert rescored["manifest"]["rescore_of"] == run["id"] and rescored["stats"]["calls"] == 0


def test_a_null_variable_is_refused_before_any_call(setup: Setup, tmp_path: Path) -> None:
    data = rows(12)
    data[9]["variables"]["ticket"] = None
    write_jsonl(tmp_path / "cases.jsonl", data)
    (tmp_path / "suite.yaml").write_text(suite_text())
    before = setup.sim_calls()
    result = setup.cli("eval", "run", "suite.yaml", "--no-store", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cases.jsonl:10: case t09: variables.ticket is null" in result.stderr
    assert setup.sim_calls() == before


def test_a_late_bad_row_is_found_before_the_first_call(setup: Setup, tmp_path: Path) -> None:
    data = rows(50)
    del data[44]["variables"]["ticket"]
    data[44]["variables"]["tikcet"] = "a typo in the field name"
    write_jsonl(tmp_path / "cases.jsonl", data)
    (tmp_path / "suite.yaml").write_text(
        suite_text(extra="repeat: 2\n", scorers=JUDGED, gate="{}").replace(
            "concurrency: 4\n", "concurrency: 4\njudge: {model: judge}\n"
        )
    )
    before = setup.sim_calls()
    result = setup.cli("eval", "run", "suite.yaml", "--no-store", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "nothing was called" in result.stderr
    assert "cases.jsonl:45: case t44: cannot render prompt 'triage'" in result.stderr
    assert "missing required variables: ticket" in result.stderr
    assert "unknown variables: tikcet" in result.stderr
    assert setup.sim_calls() == before, "no call may be paid for before a bad row is found"


def test_a_csv_row_missing_a_field_names_line_and_column(setup: Setup, tmp_path: Path) -> None:
    (tmp_path / "cases.csv").write_text(
        "id,ticket,expected\nc1,Charged twice,billing\nc2\nc3,App crashes,bug\n"
    )
    (tmp_path / "suite.yaml").write_text(suite_text(dataset="cases.csv"))
    result = setup.cli("eval", "run", "suite.yaml", "--no-store", cwd=tmp_path)
    assert result.returncode == 2
    assert "cases.csv:3: missing field(s) ticket, expected" in result.stderr


def test_a_csv_with_a_byte_order_mark_reads_its_header(setup: Setup, tmp_path: Path) -> None:
    lines = ["id,ticket,expected"] + [f"c{i},Ticket {i},billing" for i in range(6)]
    (tmp_path / "cases.csv").write_bytes(("\ufeff" + "\n".join(lines) + "\n").encode("utf-8"))
    (tmp_path / "suite.yaml").write_text(suite_text(dataset="cases.csv"))
    result = setup.cli(
        "eval", "run", "suite.yaml", "--output", "r.json", "--no-store", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c["id"] for c in artifact(tmp_path / "r.json")["results"]["cases"]][:2] == ["c0", "c1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda s: s + "scorers:\n  - {type: length, max_chars: 5}\n",
            "suite.yaml:8: scorers: the key appears twice in this mapping (first on line 5)",
            id="duplicate-key",
        ),
        pytest.param(
            lambda s: s.replace("concurrency: 4\n", "concurrency: 4\nrepeat: 1\n").replace(
                "threshold: 0.9}", "threshold: 0.9}\n  - {type: self_consistency}"
            ),
            "self_consistency compares the repeats of a case: it needs `repeat: 2`",
            id="self-consistency-repeat-1",
        ),
        pytest.param(
            lambda s: s.replace("model: fast}", "model: fast, params: {tempreature: 0}}"),
            "unknown release parameter 'tempreature'",
            id="param-typo-in-suite",
        ),
    ],
)
def test_suite_mistakes_exit_2_before_any_call(
    setup: Setup, tmp_path: Path, change: object, message: str
) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(6))
    (tmp_path / "suite.yaml").write_text(change(suite_text()))  # type: ignore[operator]
    before = setup.sim_calls()
    result = setup.cli("eval", "run", "suite.yaml", "--no-store", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert setup.sim_calls() == before


def test_a_misspelt_judge_or_embedding_model_exits_2_before_any_call(
    setup: Setup, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(6))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        suite_text(
            scorers=JUDGED + "\n  - {type: embedding_similarity, min_similarity: 0.1}",
            extra="judge: {model: jduge}\nembedding_model: embeddings\n",
        )
    )
    before = setup.sim_calls()
    result = setup.cli("eval", "run", "suite.yaml", "--no-store", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "judge.model: the gateway serves no model 'jduge' to this key" in result.stderr
    assert "embedding_model: the gateway serves no model 'embeddings'" in result.stderr
    assert setup.sim_calls() == before


def test_a_param_typo_on_the_command_line_is_refused_as_releases_refuse_it(
    setup: Setup, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(6))
    (tmp_path / "suite.yaml").write_text(suite_text())
    result = setup.cli(
        "eval", "run", "suite.yaml", "--param", "max_token=5", "--no-store", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "unknown release parameter 'max_token'; allowed:" in result.stderr
    assert "max_tokens" in result.stderr


def test_a_suite_that_is_not_utf8_exits_2_naming_the_line(setup: Setup, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(6))
    (tmp_path / "suite.yaml").write_bytes(
        suite_text().replace("name: triage", "name: triage\ndescription: caf\xe9").encode("latin-1")
    )
    result = setup.cli("eval", "run", "suite.yaml", "--no-store", cwd=tmp_path)
    assert result.returncode == 2
    assert "suite.yaml:2: not UTF-8 text (byte 0xe9)" in result.stderr


def test_an_unreachable_gateway_exits_3(setup: Setup, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(6))
    (tmp_path / "suite.yaml").write_text(suite_text())
    down = f"http://127.0.0.1:{free_port()}"
    result = setup.cli("eval", "run", "suite.yaml", cwd=tmp_path, env={"PILOTHOUSE_URL": down})
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"cannot reach Pilothouse at {down}" in result.stderr


def test_a_provider_failing_every_call_exits_3_with_every_output_written(
    setup: Setup, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(6))
    (tmp_path / "suite.yaml").write_text(suite_text(target="{prompt: triage@1, model: broken}"))
    result = setup.cli(
        "eval", "run", "suite.yaml", "--junit", "out/j.xml", "--output", "r.json", cwd=tmp_path
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "calls failed for infrastructure reasons" in result.stderr
    assert "--resume" in result.stderr
    run = artifact(tmp_path / "r.json")
    assert run["passed"] is False and only_target(run)["infra_errors"] == 6
    assert (tmp_path / "out" / "j.xml").exists()
    stored = setup.gw.admin.get(f"/api/evals/runs/{run['id']}")
    assert stored.status_code == 200, "a failed run is stored too"


def test_junit_into_a_missing_folder_is_created_and_a_folder_path_is_refused(
    setup: Setup, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(6))
    (tmp_path / "suite.yaml").write_text(suite_text())
    ok = setup.cli(
        "eval", "run", "suite.yaml", "--junit", "reports/ci/eval.xml", "--no-store", cwd=tmp_path
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (tmp_path / "reports" / "ci" / "eval.xml").read_text().startswith("<?xml")
    (tmp_path / "adir").mkdir()
    before = setup.sim_calls()
    bad = setup.cli("eval", "run", "suite.yaml", "--html", "adir", "--no-store", cwd=tmp_path)
    assert bad.returncode == 2 and "'adir' is a directory" in bad.stderr
    assert setup.sim_calls() == before


def test_a_run_that_cannot_be_stored_exits_3_after_writing_every_file(
    setup: Setup, tmp_path: Path
) -> None:
    data_dir = tmp_path / "gw"
    gw = start_gateway(config(setup.sim), f"sqlite:///{data_dir / 'p.db'}", data_dir)
    try:
        key = gw.create_key(name="ci", scopes=["evals"])
        response = gw.admin.post(
            "/api/prompts/triage/versions", json={**triage_prompt(), "labels": ["production"]}
        )
        assert response.status_code == 201
        with sqlite3.connect(data_dir / "p.db") as db:  # storage breaks under the server
            db.execute("DROP TABLE eval_runs")
        write_jsonl(tmp_path / "cases.jsonl", rows(6))
        (tmp_path / "suite.yaml").write_text(suite_text())
        env = {"PILOTHOUSE_URL": gw.url, "PILOTHOUSE_API_KEY": key}
        result = setup.cli(
            "eval",
            "run",
            "suite.yaml",
            "--output",
            "r.json",
            "--markdown",
            "r.md",
            cwd=tmp_path,
            env=env,
        )
    finally:
        gw.stop()
    assert result.returncode == 3, result.stdout + result.stderr
    assert "gate PASSED" in result.stdout
    assert "the run was not stored" in result.stderr
    assert artifact(tmp_path / "r.json")["passed"] is True
    assert "passed" in (tmp_path / "r.md").read_text()


def test_replay_of_a_changed_dataset_or_suite_exits_2_naming_what_changed(
    setup: Setup, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(8))
    suite = tmp_path / "suite.yaml"
    suite.write_text(suite_text())
    assert (
        setup.cli(
            "eval", "run", "suite.yaml", "--output", "a.json", "--no-store", cwd=tmp_path
        ).returncode
        == 0
    )
    # Fewer rows: every remaining call is in the record, so only the check can refuse it.
    write_jsonl(tmp_path / "cases.jsonl", rows(6))
    before = setup.sim_calls()
    fewer = setup.cli("eval", "run", "suite.yaml", "--replay", "a.json", "--no-store", cwd=tmp_path)
    assert fewer.returncode == 2, fewer.stdout + fewer.stderr
    assert "cannot be replayed: since it ran, these changed: dataset (hash" in fewer.stderr
    write_jsonl(tmp_path / "cases.jsonl", rows(8))
    suite.write_text(suite.read_text().replace("threshold: 0.9", "threshold: 0.95"))
    scorer = setup.cli(
        "eval", "run", "suite.yaml", "--replay", "a.json", "--no-store", cwd=tmp_path
    )
    assert scorer.returncode == 2 and "scorers (label_in)" in scorer.stderr
    assert "--rescore" in scorer.stderr
    assert setup.sim_calls() == before
    rescored = setup.cli(
        "eval",
        "run",
        "suite.yaml",
        "--rescore",
        "a.json",
        "--output",
        "b.json",
        "--no-store",
        cwd=tmp_path,
    )
    assert rescored.returncode == 0, rescored.stderr
    b = artifact(tmp_path / "b.json")
    assert b["manifest"]["rescored"].startswith("answers recorded by run")
    assert setup.sim_calls() == before


def test_gating_on_the_mean(setup: Setup, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(10))
    suite = tmp_path / "suite.yaml"
    judged = (
        '  - {type: llm_judge, rubric: "Plausible?", min_mean: 0.8}'  # the judge gives 4/5 = 0.75
    )
    suite.write_text(suite_text(scorers=judged, extra="judge: {model: judge}\n"))
    low = setup.cli("eval", "run", "suite.yaml", "--output", "a.json", "--no-store", cwd=tmp_path)
    assert low.returncode == 1
    assert "llm_judge: mean 0.750 is below 0.800" in low.stdout
    suite.write_text(suite.read_text().replace("min_mean: 0.8", "min_mean: 0.7"))
    assert setup.cli("eval", "run", "suite.yaml", "--no-store", cwd=tmp_path).returncode == 0
    judge = only_target(artifact(tmp_path / "a.json"))["scorers"]["llm_judge"]
    assert judge["mean_ci95"] == [0.75, 0.75]


def test_cost_counts_the_judge_and_the_embedding_model_is_in_the_manifest(
    setup: Setup, tmp_path: Path
) -> None:
    data = rows(6)
    write_jsonl(tmp_path / "cases.jsonl", data)
    (tmp_path / "suite.yaml").write_text(
        suite_text(
            scorers='  - {type: llm_judge, rubric: "Plausible?"}\n'
            "  - {type: embedding_similarity, min_similarity: 0.0}",
            extra="judge: {model: judge}\n",
        )
    )
    result = setup.cli(
        "eval", "run", "suite.yaml", "--output", "r.json", "--no-store", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run = artifact(tmp_path / "r.json")
    cost = run["summary"]["cost_usd"]
    assert cost["judge"] > 0 and cost["total"] == pytest.approx(
        cost["target"] + cost["judge"] + cost["embeddings"]
    )
    assert run["manifest"]["embedding_model"]["model_alias"] == "embed"
    assert run["manifest"]["embedding_model"]["provider_models"] == ["sim-embed"]
    assert "+ 6 judge + 6 embedding" in result.stdout


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A pass-through to the gateway that keeps every request's path and headers."""

    upstream = ""
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        model = json.loads(body).get("model", "") if body else ""
        self.seen.append((f"{self.path} {model}", {k.lower(): v for k, v in self.headers.items()}))
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
        }
        reply = httpx.request(
            self.command, self.upstream + self.path, content=body, headers=headers, timeout=30
        )
        self.send_response(reply.status_code)
        for key, value in reply.headers.items():
            if key.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
                "content-encoding",
            ):
                self.send_header(key, value)
        self.send_header("content-length", str(len(reply.content)))
        self.end_headers()
        self.wfile.write(reply.content)

    do_GET = do_POST = _relay

    def log_message(self, *args: object) -> None:
        pass


def test_every_gateway_call_is_marked_as_eval_traffic_with_the_run_id(
    setup: Setup, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(5))
    (tmp_path / "suite.yaml").write_text(
        suite_text(
            scorers='  - {type: llm_judge, rubric: "Plausible?"}\n'
            "  - {type: embedding_similarity, min_similarity: 0.0}",
            extra="judge: {model: judge}\n",
        )
    )
    _Recorder.upstream, _Recorder.seen = setup.gw.url, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = setup.cli(
            "eval", "run", "suite.yaml", "--no-cache", "--output", "r.json", cwd=tmp_path,
            env={"PILOTHOUSE_URL": f"http://127.0.0.1:{server.server_address[1]}"},
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = artifact(tmp_path / "r.json")["id"]
    calls = [(what, h) for what, h in _Recorder.seen if not what.startswith("/v1/models")]
    kinds = Counter(what for what, _ in calls if what.startswith("/v1/"))
    assert set(kinds) == {
        "/v1/chat/completions fast",
        "/v1/chat/completions judge",
        "/v1/embeddings embed",
    }
    assert kinds["/v1/chat/completions fast"] == 5  # identical judge or embedding requests: once
    calls = [(what, h) for what, h in calls if what.startswith("/v1/")]
    for _, headers in calls:
        assert headers["x-pilothouse-source"] == "eval"
        assert headers["x-pilothouse-eval-run"] == run_id
