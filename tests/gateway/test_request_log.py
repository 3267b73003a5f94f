"""Every served request is in the request log, with tokens, cost and TTFT, even when the
store goes away mid-traffic."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from harness import Gateway, Simulator, fresh_schema, gateway_config, start_gateway
from tcp_proxy import TcpProxy

HELLO = [{"role": "user", "content": "Log me."}]
PRICES = {"fast": (0.15, 0.60), "smart": (2.5, 10.0), "claude": (3.0, 15.0)}


def expected_cost(model: str, row: dict) -> float:
    input_price, output_price = PRICES[model]
    return (row["prompt_tokens"] * input_price + row["completion_tokens"] * output_price) / 1e6


def test_n_requests_make_exactly_n_rows_with_tokens_cost_and_ttft(gateway: Gateway) -> None:
    key = gateway.create_key(name="log-test")
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    sent: dict[str, str] = {}  # request id -> kind

    for i, model in enumerate(["fast", "smart", "claude"] * 3):
        stream = i % 2 == 0
        rid = f"log-{gateway.database_url[:6]}-{i}"
        response = sdk.chat.completions.with_raw_response.create(
            model=model, messages=HELLO, stream=stream, extra_headers={"x-request-id": rid}
        )
        # The caller's id is echoed and kept as a label; the row's id is the gateway's own.
        assert response.headers["x-client-request-id"] == rid
        assert response.headers["x-request-id"] != rid
        if stream:
            list(response.parse())
        sent[rid] = f"{model}:{'stream' if stream else 'plain'}"
    for fault in ("f-500", "f-429"):
        rid = f"log-{gateway.database_url[:6]}-{fault}"
        with pytest.raises(openai.APIStatusError):
            sdk.chat.completions.create(
                model=fault, messages=HELLO, extra_headers={"x-request-id": rid}
            )
        sent[rid] = fault

    rows = {
        r["client_request_id"]: r
        for r in gateway.log_rows(len(sent), key=_key_id(gateway, "log-test"))
    }
    assert set(rows) == set(sent)
    for rid, kind in sent.items():
        row = rows[rid]
        if kind.startswith("f-"):
            assert row["status_code"] == {"f-500": 502, "f-429": 429}[kind]
            assert row["error_class"] == {"f-500": "upstream_5xx", "f-429": "rate_limited"}[kind]
            assert row["provider"] == "sim" and row["cost_usd"] is None
            continue
        model, mode = kind.split(":")
        assert row["status_code"] == 200 and row["error_class"] is None
        assert row["model_alias"] == model and row["stream"] == (mode == "stream")
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
        assert row["cost_usd"] == pytest.approx(expected_cost(model, row))
        assert row["latency_ms"] > 0 and row["finish_reason"] == "stop"
        assert row["provider_model"] in ("sim-small", "sim-large", "sim-claude")
        if mode == "stream":
            assert 0 < row["ttft_upstream_ms"] <= row["ttft_delivered_ms"] <= row["latency_ms"]
            assert row["ttft_gateway_ms"] == pytest.approx(
                row["ttft_delivered_ms"] - row["ttft_upstream_ms"]
            )
            assert row["chunks_in"] >= row["chunks_out"] > 2
        else:
            assert row["ttft_delivered_ms"] is None


def test_cost_reaches_prometheus(gateway: Gateway) -> None:
    key = gateway.create_key(name="metrics-test")
    openai.OpenAI(base_url=gateway.url + "/v1", api_key=key).chat.completions.create(
        model="smart", messages=HELLO
    )
    text = httpx.get(gateway.url + "/metrics").text
    cost_lines = [
        line
        for line in text.splitlines()
        if line.startswith('pilothouse_cost_usd_total{model="smart"')
    ]
    assert cost_lines and float(cost_lines[0].split()[-1]) > 0
    assert (
        'pilothouse_requests_total{endpoint="chat",model="smart",outcome="ok",'
        'provider="sim",status="200"}' in text
    )


def metric(gateway: Gateway, name: str) -> float:
    """The value of an unlabelled metric from /metrics."""
    for line in httpx.get(gateway.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} is not in /metrics")


def _key_id(gateway: Gateway, name: str) -> str:
    keys = gateway.admin.get("/api/keys").json()["data"]
    return next(k["id"] for k in keys if k["name"] == name)


def loader_state(gw: Gateway) -> str:
    """Why rows are missing (this test failed once, unreproduced): the request log's and
    the database's health as the instance sees them, and the end of its log."""
    try:
        checks = httpx.get(gw.url + "/healthz", timeout=10).json()["checks"]
        state = json.dumps({k: checks[k] for k in ("database", "request_log")}, indent=1)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        state = f"/healthz did not answer: {exc!r}"
    return f"{state}\nserve log (end):\n{gw.output()[-4000:]}"


def test_store_outage_mid_traffic_loses_no_row(
    simulator: Simulator, postgres_base_url: str, tmp_path: Path
) -> None:
    """PostgreSQL behind a proxy that the test cuts: serving goes on, rows wait in the
    journal, and every one of them arrives once the database is back."""
    with fresh_schema(postgres_base_url) as direct_url:
        parts = urlsplit(direct_url)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        proxy.start()
        proxied = direct_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
        gw = start_gateway(gateway_config(simulator), proxied, tmp_path / "gw")
        try:
            key = gw.create_key(name="outage")
            sdk = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=10)
            served = 0

            def burst(n: int) -> None:
                nonlocal served
                for i in range(n):
                    if i % 2 == 0:
                        # Read streams to the end: an unread stream holds a pooled connection.
                        with sdk.chat.completions.create(
                            model="fast", messages=HELLO, stream=True
                        ) as s:
                            assert any(chunk.choices for chunk in list(s))
                    else:
                        sdk.chat.completions.create(model="fast", messages=HELLO)
                    served += 1

            burst(10)
            proxy.cut()
            outage_started = time.monotonic()
            # Traffic while the store is gone, until the loader has seen it fail: rows
            # then wait in the journal on disk, not in memory.
            while metric(gw, "pilothouse_request_log_store_up") != 0:
                assert time.monotonic() - outage_started < 15, "the outage was not noticed"
                burst(5)
            burst(5)
            assert metric(gw, "pilothouse_request_log_backlog_bytes") > 0
            assert metric(gw, "pilothouse_request_log_memory_rows") < served
            proxy.restore()
            burst(10)
            rows = gw.log_rows(served, timeout=20)
            assert len(rows) == served, loader_state(gw)
            assert all(r["status_code"] == 200 for r in rows)
            # The gauges follow the loader's commit: poll them briefly.
            deadline = time.monotonic() + 5
            while (
                metric(gw, "pilothouse_request_log_backlog_bytes") and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            assert metric(gw, "pilothouse_request_log_backlog_bytes") == 0
            assert metric(gw, "pilothouse_request_log_store_up") == 1
            assert metric(gw, "pilothouse_request_log_rows_written_total") >= served
            assert metric(gw, "pilothouse_request_log_rows_journaled_total") >= served
        finally:
            gw.stop()
            proxy.cut()


def test_server_logs_are_json_lines_carrying_the_request_id(gateway: Gateway) -> None:
    key = gateway.create_key(name="json-logs")
    with pytest.raises(openai.InternalServerError) as failed:
        openai.OpenAI(
            base_url=gateway.url + "/v1", api_key=key, max_retries=0
        ).chat.completions.create(model="f-500", messages=HELLO)
    rid = failed.value.response.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while rid not in gateway.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in gateway.output().splitlines() if line.startswith("{")]
    failure = next(entry for entry in lines if entry.get("request_id") == rid)
    assert failure["level"] == "warning" and failure["provider"] == "sim"
    assert failure["error_class"] == "upstream_5xx" and "HTTP 500" in failure["message"]
    assert "sim-secret" not in gateway.output(), "a provider key must never be logged"
