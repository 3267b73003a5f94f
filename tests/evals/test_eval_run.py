"""`pilothouse eval` end to end: a real suite file, the gateway, the simulator, the judge;
gate exit codes, exact replay, comparison, datasets, requalification."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness import ADMIN_TOKEN, Gateway, Simulator, gateway_config, start_gateway

TRIAGE = {
    "messages": [
        {"role": "system", "content": "Route the ticket to a queue. Answer in JSON."},
        {"role": "user", "content": "{{ticket}}"},
    ],
    "variables": {"ticket": {}},
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "queue",
            "schema": {
                "type": "object",
                "properties": {"label": {"enum": ["billing", "bug", "question"]}},
                "required": ["label"],
            },
        },
    },
}
ROWS = [
    {"id": f"t{i}", "variables": {"ticket": text}, "expected": "billing", "tags": ["smoke"]}
    for i, text in enumerate(
        [
            "My card was charged twice",
            "App crashes on login",
            "How do I export data?",
            "Refund please",
            "Invoice is wrong",
            "Button does nothing",
            "Where is the API key?",
            "Charged after cancelling",
        ]
    )
]
SUITE = """\
name: triage-quality
owner: support
target: {{prompt: "triage@1", model: fast}}
dataset: triage.jsonl
repeat: 2
reducer: mean
concurrency: 4
seed: 3
judge: {{model: {judge}, params: {{temperature: 0}}}}
scorers:
  - {{type: json_valid, threshold: 1.0}}
  - {{type: label_in, path: label, labels: [billing, bug, question], threshold: 0.9}}
  - {{type: length, max_chars: 2000}}
  - {{type: llm_judge, rubric: "Is the queue plausible for the ticket?", threshold: {judge_threshold}}}
{extra}
gate: {{max_invalid_rate: {max_invalid}, min_verdicts: 8}}
"""


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("evals")
    gateway = start_gateway(gateway_config(simulator), f"sqlite:///{data_dir / 'p.db'}", data_dir)
    response = gateway.admin.post(
        "/api/prompts/triage/versions", json={**TRIAGE, "labels": ["production"]}
    )
    assert response.status_code in (200, 201), response.text
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def env(gw: Gateway) -> dict[str, str]:
    return {
        **os.environ,
        "PILOTHOUSE_URL": gw.url,
        "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PILOTHOUSE_API_KEY": gw.create_key(name="ci-evals", scopes=["evals"]),
    }


def write_suite(
    directory: Path,
    *,
    judge: str = "judge",
    judge_threshold: float = 0.8,
    extra: str = "",
    max_invalid: float = 0.2,
    name: str = "suite.yaml",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "triage.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path = directory / name
    path.write_text(
        SUITE.format(
            judge=judge, judge_threshold=judge_threshold, extra=extra, max_invalid=max_invalid
        )
    )
    return path


def pilothouse(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_a_passing_suite_exits_0_with_a_manifest_and_ci_reports(
    gw: Gateway, env: dict[str, str], tmp_path: Path
) -> None:
    suite = write_suite(tmp_path)
    artifact, junit, markdown = (
        tmp_path / "run.json",
        tmp_path / "junit.xml",
        tmp_path / "summary.md",
    )
    result = pilothouse(
        env,
        "eval",
        "run",
        str(suite),
        "--output",
        str(artifact),
        "--junit",
        str(junit),
        "--markdown",
        str(markdown),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "triage-quality: gate PASSED" in result.stdout
    run = json.loads(artifact.read_text())
    scorers = run["summary"]["targets"]["triage@1/fast"]["scorers"]
    assert scorers["json_valid"]["pass_rate"] == 1.0 and scorers["label_in"]["pass_rate"] == 1.0
    assert scorers["llm_judge"]["mean"] == pytest.approx(0.75)  # 4 on a 1-5 scale
    low, high = scorers["label_in"]["pass_rate_ci95"]
    assert 0.6 < low < 1.0 and high == pytest.approx(1.0)
    manifest = run["manifest"]
    assert manifest["dataset"]["rows"] == 8 and len(manifest["dataset"]["hash"]) == 64
    assert manifest["suite"]["file_hash"] and manifest["scorer_code_version"]
    (target,) = manifest["targets"]
    assert target["prompt"] == "triage@1" and len(target["prompt_hash"]) == 64
    assert target["provider_models"] == ["sim-small"]
    assert (
        manifest["judge"]["provider_models"] == ["sim-judge"] and manifest["judge"]["rubric_hash"]
    )
    assert manifest["repeat"] == 2 and manifest["seed"] == 3 and manifest["pilothouse_version"]
    assert len(run["results"]["cases"]) == 8 and all(
        len(c["targets"]["triage@1/fast"]["outputs"]) == 2 for c in run["results"]["cases"]
    )
    assert 'testsuite name="pilothouse.eval.triage-quality.triage@1/fast"' in junit.read_text()
    assert "| label_in | 100.0% |" in markdown.read_text()
    listed = json.loads(
        pilothouse(env, "eval", "runs", "--suite", "triage-quality", "--json").stdout
    )
    assert run["id"] in [r["id"] for r in listed]


def test_replay_reproduces_scores_exactly_without_calling_anyone(
    gw: Gateway, env: dict[str, str], tmp_path: Path
) -> None:
    suite = write_suite(tmp_path)
    first = tmp_path / "first.json"
    assert (
        pilothouse(env, "eval", "run", str(suite), "--output", str(first), "--no-store").returncode
        == 0
    )
    replay_started = datetime.now(UTC).isoformat()
    second = tmp_path / "second.json"
    replayed = pilothouse(
        env,
        "eval",
        "run",
        str(suite),
        "--replay",
        str(first),
        "--output",
        str(second),
        "--no-store",
    )
    assert replayed.returncode == 0, replayed.stderr
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert b["stats"]["calls"] == 0 and b["stats"]["replayed"] is True
    assert a["summary"]["targets"] == b["summary"]["targets"]
    assert [c["targets"] for c in a["results"]["cases"]] == [
        c["targets"] for c in b["results"]["cases"]
    ]
    assert {k: v for k, v in a["manifest"].items() if k != "replay_of"} == {
        k: v for k, v in b["manifest"].items() if k != "replay_of"
    }
    assert b["manifest"]["replay_of"] == a["id"]
    time.sleep(0.6)  # longer than the request-log writer's flush interval
    assert gw.log_rows(since=replay_started) == [], "a replay must not reach the gateway"
    # A changed suite cannot be replayed against old answers: that is a configuration error.
    (tmp_path / "triage.jsonl").write_text(
        (tmp_path / "triage.jsonl").read_text().replace("twice", "thrice")
    )
    miss = pilothouse(env, "eval", "run", str(suite), "--replay", str(first), "--no-store")
    assert miss.returncode == 2 and "cannot be replayed" in miss.stderr


def test_a_custom_scorer_next_to_the_suite_is_found(
    gw: Gateway, env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "house_checks.py").write_text(
        "def short_label(case, output, max_len=10):\n"
        "    import json\n"
        "    return len(json.loads(output.text)['label']) <= max_len\n"
    )
    suite = write_suite(
        tmp_path,
        extra="  - {type: 'house_checks:short_label', name: short-label, max_len: 8, threshold: 1.0}",
    )
    artifact = tmp_path / "custom.json"
    result = pilothouse(env, "eval", "run", str(suite), "--output", str(artifact), "--no-store")
    assert result.returncode == 0, result.stdout + result.stderr
    (summary,) = json.loads(artifact.read_text())["summary"]["targets"].values()
    assert summary["scorers"]["short-label"]["pass_rate"] == 1.0


def test_a_failing_gate_exits_1(gw: Gateway, env: dict[str, str], tmp_path: Path) -> None:
    suite = write_suite(tmp_path, extra='  - {type: contains, value: "escalate", threshold: 0.5}')
    result = pilothouse(env, "eval", "run", str(suite), "--no-store")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gate FAILED" in result.stdout
    assert "contains: pass rate 0.0% is below 50.0%" in result.stdout


def test_unparseable_judge_replies_are_invalid_not_scores(
    gw: Gateway, env: dict[str, str], tmp_path: Path
) -> None:
    suite = write_suite(tmp_path, judge="judge-prose", max_invalid=0.5)
    artifact = tmp_path / "prose.json"
    result = pilothouse(env, "eval", "run", str(suite), "--output", str(artifact), "--no-store")
    (summary,) = json.loads(artifact.read_text())["summary"]["targets"].values()
    judge = summary["scorers"]["llm_judge"]
    assert judge["invalid"] == 8 and judge["scored"] == 0 and judge["mean"] is None
    assert result.returncode == 1  # its threshold cannot be met with nothing scored
    strict = write_suite(
        tmp_path / "strict", judge="judge-prose", judge_threshold=0.0, max_invalid=0.1
    )
    assert (
        "8 of 8 verdicts invalid"
        in pilothouse(env, "eval", "run", str(strict), "--no-store").stdout
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.replace("repeat: 2", "repeat: many"),
            "suite.yaml:5: repeat: Input should be a valid integer",
        ),
        (
            lambda s: s.replace("type: length", "type: lenght"),
            "suite.yaml:13: scorers[2].type: unknown scorer",
        ),
        (
            lambda s: s.replace("dataset: triage.jsonl", "dataset: missing.jsonl"),
            "suite.yaml:4: dataset: no such file",
        ),
        (lambda s: s.replace("model: judge", "model: fast"), "the judge is the model under test"),
        (lambda s: s.replace("triage@1", "triage@9"), "no prompt 'triage' version 9"),
    ],
)
def test_bad_configuration_exits_2_naming_what_is_wrong(
    gw: Gateway, env: dict[str, str], tmp_path: Path, change: object, message: str
) -> None:
    suite = write_suite(tmp_path)
    suite.write_text(change(suite.read_text()))  # type: ignore[operator]
    result = pilothouse(env, "eval", "run", str(suite), "--no-store")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


def test_compare_two_runs_and_a_candidate_from_the_command_line(
    gw: Gateway, env: dict[str, str], tmp_path: Path
) -> None:
    suite = write_suite(tmp_path, extra="  - {type: length, name: short, max_chars: 40}")
    base, cand = tmp_path / "base.json", tmp_path / "cand.json"
    assert pilothouse(
        env, "eval", "run", str(suite), "--output", str(base), "--no-store"
    ).returncode in (0, 1)
    pilothouse(
        env, "eval", "run", str(suite), "--model", "smart", "--output", str(cand), "--no-store"
    )
    candidate = json.loads(cand.read_text())
    (target,) = candidate["manifest"]["targets"]
    assert target["model_alias"] == "smart" and target["name"] == "triage@1/smart"
    assert target["provider_models"] == ["sim-large"]
    compared = json.loads(pilothouse(env, "eval", "compare", str(base), str(cand), "--json").stdout)
    assert compared["common_cases"] == 8
    assert set(compared["scorers"]) == {"json_valid", "label_in", "length", "llm_judge", "short"}
    assert 0.0 <= compared["scorers"]["label_in"]["p_value"] <= 1.0
    assert compared["scorers"]["label_in"]["pass_test"]["test"] == "mcnemar_exact"
    table = pilothouse(env, "eval", "compare", str(base), str(cand)).stdout
    assert table.splitlines()[1].split()[:4] == ["SCORER", "METRIC", "A", "B"]


def test_datasets_push_and_from_logs_then_a_route_suite_and_requalify(
    gw: Gateway, env: dict[str, str], tmp_path: Path
) -> None:
    write_suite(tmp_path)
    pushed = pilothouse(env, "datasets", "push", str(tmp_path / "triage.jsonl"), "--name", "triage")
    assert "triage: created (version 1, 8 rows" in pushed.stdout, pushed.stderr
    assert (
        "unchanged (version 1"
        in pilothouse(
            env, "datasets", "push", str(tmp_path / "triage.jsonl"), "--name", "triage"
        ).stdout
    )

    promoted = gw.admin.post(
        "/api/routes/triage-route/promote", json={"prompt": "triage@1", "model": "fast"}
    )
    assert promoted.status_code == 201
    t0 = datetime.now(UTC).isoformat()
    for row in ROWS:
        gw.admin.post("/v1/chat/completions", json={})  # noise without a key: never sampled
        pilothouse_call(gw, env["PILOTHOUSE_API_KEY"], row["variables"])
    # The log writer batches: from-logs must see all 8 calls.
    logged = gw.log_rows(expected=8, since=t0, status=200)
    assert len(logged) >= 8, f"only {len(logged)} of the 8 calls were logged"
    sampled = pilothouse(
        env,
        "datasets",
        "from-logs",
        "--route",
        "triage-route",
        "--since",
        "1h",
        "--sample",
        "5",
        "--name",
        "triage-live",
        "--seed",
        "1",
    )
    assert "triage-live: version 1, 5 rows" in sampled.stdout, sampled.stderr

    suites = tmp_path / "evals"
    suites.mkdir()
    route_suite = (
        (tmp_path / "suite.yaml")
        .read_text()
        .replace('target: {prompt: "triage@1", model: fast}', "target: {route: triage-route}")
        .replace("dataset: triage.jsonl", "dataset: {name: triage-live, version: 1}")
        .replace("min_verdicts: 8", "min_verdicts: 5")
    )
    (suites / "route.yaml").write_text(route_suite)
    run = pilothouse(
        env,
        "eval",
        "run",
        str(suites / "route.yaml"),
        "--output",
        str(tmp_path / "r.json"),
        "--no-store",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    manifest = json.loads((tmp_path / "r.json").read_text())["manifest"]
    assert manifest["targets"][0]["release_id"] == promoted.json()["id"]
    assert manifest["targets"][0]["served_release_ids"] == [promoted.json()["id"]]
    assert manifest["dataset"]["source"] == "triage-live@1"

    requalified = pilothouse(
        env, "models", "requalify", "triage-route", "--to", "smart", "--suites", str(suites)
    )
    assert requalified.returncode == 0, requalified.stdout + requalified.stderr
    assert "route.yaml: current passes, on smart passes" in requalified.stdout


def pilothouse_call(gw: Gateway, key: str, variables: dict[str, str]) -> None:
    import httpx

    response = httpx.post(
        gw.url + "/v1/chat/completions",
        json={
            "model": "route:triage-route",
            "messages": [],
            "pilothouse": {"variables": variables},
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
