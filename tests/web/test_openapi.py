"""The OpenAPI description is served, and schemathesis finds no server error anywhere in
/v1 and /api, on SQLite and on PostgreSQL (a real gateway process on the simulator)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness import ADMIN_TOKEN, Gateway, Simulator, fresh_schema, start_gateway

# Healthy aliases only: a fault alias answering 502 is the gateway doing its job.
CONFIG = """
providers:
  sim: {{type: openai, base_url: "{openai}", timeout_seconds: 5}}
  sim-anthropic: {{type: anthropic, base_url: "{root}", timeout_seconds: 5}}
models:
  fast: {{provider: sim, model: sim-small, pricing: {{input_per_mtok: 0.15, output_per_mtok: 0.6}}}}
  claude: {{provider: sim-anthropic, model: sim-claude}}
  embed: {{provider: sim, model: sim-embed}}
"""


STORES = ("sqlite", "postgresql")


@pytest.fixture(scope="module")
def fuzz_gateways(
    request: pytest.FixtureRequest, simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Gateway]]:
    """A gateway on each store, both up at once: each sweep runs on the two together (two
    cores, half the time of one after the other)."""
    config = CONFIG.format(openai=simulator.openai_url, root=simulator.url)
    data = {store: tmp_path_factory.mktemp(f"fuzz-{store}") for store in STORES}
    with fresh_schema(request.getfixturevalue("postgres_base_url")) as url:
        gateways = {
            "sqlite": start_gateway(config, f"sqlite:///{data['sqlite'] / 'p.db'}", data["sqlite"]),
            "postgresql": start_gateway(config, url, data["postgresql"]),
        }
        try:
            yield gateways
        finally:
            for gw in gateways.values():
                gw.stop()


def test_the_openapi_description_covers_both_doors(fuzz_gateways: dict[str, Gateway]) -> None:
    for fuzz_gateway in fuzz_gateways.values():
        spec = httpx.get(fuzz_gateway.url + "/openapi.json").json()
        assert spec["openapi"].startswith("3.")
        paths = spec["paths"]
        for path in ("/v1/chat/completions", "/v1/models/{model}", "/api/keys", "/api/requests"):
            assert path in paths
        filters = {p["name"] for p in paths["/api/requests"]["get"]["parameters"]}
        assert {"since", "status", "outcome", "limit", "before"} <= filters
        key_schema = spec["components"]["schemas"]["CreateKey"]
        assert key_schema["properties"]["name"]["maxLength"] == 200
        enum = paths["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
        assert enum["schema"]["properties"]["model"]["enum"] == ["claude", "embed", "fast"]


def _schemathesis(
    gateways: dict[str, Gateway], tokens: dict[str, str], *selection: str, tmp: Path
) -> dict[str, str]:
    """Schemathesis against each gateway at once; each one's output (it must pass)."""
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert executable, "schemathesis is a dev dependency (pyproject.toml)"
    runs = {}
    for store, gw in gateways.items():
        (tmp / store).mkdir()
        runs[store] = subprocess.Popen(
            [
                executable,
                "run",
                gw.url + "/openapi.json",
                "--url",
                gw.url,
                "-H",
                f"Authorization: Bearer {tokens[store]}",
                "--checks",
                "not_a_server_error",
                "--phases",
                "coverage,fuzzing",
                "--max-examples",
                "25",
                # One worker: hypothesis' lambda descriptions call ast.parse, which is not
                # safe across threads on CPython 3.11 (a SystemError inside the tool).
                "--workers",
                "1",
                "--seed",
                "20261129",
                "--generation-database",
                "none",
                "--request-timeout",
                "20",
                *selection,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp / store,
        )
    outputs = {}
    try:
        for store, run in runs.items():
            outputs[store], _ = run.communicate(timeout=300)
    finally:  # both are waited for before either verdict: no sweep outlives the test
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()
    for store, output in outputs.items():
        assert runs[store].returncode == 0 and "ST101" not in output, f"{store}: {output[-6000:]}"
    return outputs


def test_no_server_error_anywhere_in_the_admin_api(
    fuzz_gateways: dict[str, Gateway], tmp_path: Path
) -> None:
    outputs = _schemathesis(
        fuzz_gateways,
        dict.fromkeys(STORES, ADMIN_TOKEN),
        "--exclude-path-regex",
        "^/v1/",
        "--exclude-path",
        "/api/prompts/stream",  # an endless event stream
        "--exclude-path",
        "/api/admin/token/rotate",  # would lock the fuzzer out (tests/control covers it)
        "--exclude-path",
        "/api/config/version",  # waits up to 30 s by design (tests/control covers it)
        tmp=tmp_path,
    )
    spec = httpx.get(fuzz_gateways["sqlite"].url + "/openapi.json").json()
    excluded = {"/api/prompts/stream", "/api/admin/token/rotate", "/api/config/version"}
    admin = [
        (path, method)
        for path, operations in spec["paths"].items()
        if not path.startswith("/v1/") and path not in excluded
        for method in operations
    ]
    assert len(admin) > 40
    for store, output in outputs.items():  # every operation exercised on each store
        assert f"Tested: {len(admin)}\n" in output, f"{store}: {output[-4000:]}"


def test_no_server_error_anywhere_in_the_gateway(
    fuzz_gateways: dict[str, Gateway], tmp_path: Path
) -> None:
    keys = {
        store: gw.create_key(name="fuzz", scopes=["responses:store"])
        for store, gw in fuzz_gateways.items()
    }
    outputs = _schemathesis(fuzz_gateways, keys, "--include-path-regex", "^/v1/", tmp=tmp_path)
    for store, output in outputs.items():  # chat, embeddings, models (2), stored responses (3)
        assert "Tested: 7" in output, f"{store}: {output[-4000:]}"
