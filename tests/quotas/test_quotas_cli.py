"""`pilothouse quotas set|ls|rm`, `keys usage` and `keys restore` against a real serve
process, as a user types them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from harness import ADMIN_TOKEN, Gateway, Simulator, gateway_config, start_gateway
from test_cli import pilothouse


@pytest.fixture(scope="module")
def served(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("quota-cli")
    gw = start_gateway(gateway_config(simulator), f"sqlite:///{data_dir / 'p.db'}", data_dir)
    yield gw
    gw.stop()


def test_quotas_set_ls_rm_and_keys_usage_and_restore(served: Gateway) -> None:
    env = {"PILOTHOUSE_URL": served.url, "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN}
    secret = served.create_key(name="checkout", team="payments")
    both = pilothouse(
        "quotas",
        "set",
        "x",
        "--key",
        "checkout",
        "--team",
        "t",
        "--dimension",
        "requests",
        "--window",
        "day",
        "--hard",
        "1",
        env=env,
    )
    assert both.returncode != 0 and "exactly one of --key, --user or --team" in both.stderr
    set_ = pilothouse(
        "quotas",
        "set",
        "checkout-rpm",
        "--key",
        "checkout",
        "--dimension",
        "requests",
        "--window",
        "minute",
        "--hard",
        "2",
        env=env,
    )
    assert set_.returncode == 0, set_.stderr
    assert "hard 2 requests per minute" in set_.stdout
    soft_only = pilothouse(
        "quotas",
        "set",
        "payments-usd",
        "--team",
        "payments",
        "--dimension",
        "cost",
        "--window",
        "day",
        "--soft",
        "5",
        "--degrade-to",
        "nope",
        env=env,
    )
    assert soft_only.returncode != 0 and "not a model alias" in soft_only.stderr
    listing = pilothouse("quotas", "ls", env=env).stdout
    assert "checkout-rpm" in listing and "hard 2 requests per minute" in listing

    sdk = openai.OpenAI(base_url=served.url + "/v1", api_key=secret, max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    sdk.chat.completions.create(model="fast", messages=messages)  # type: ignore[arg-type]
    usage = json.loads(pilothouse("keys", "usage", "checkout", "--json", env=env).stdout)
    [quota] = usage["quotas"]
    assert (quota["quota"], quota["used"], quota["remaining"]) == ("checkout-rpm", 1, 1)
    table = pilothouse("keys", "usage", "checkout", env=env).stdout
    assert "active" in table and "checkout-rpm" in table

    not_suspended = pilothouse("keys", "restore", "checkout", "--reason", "x", env=env)
    assert not_suspended.returncode != 0 and "is not suspended" in not_suspended.stderr
    no_reason = pilothouse("keys", "restore", "checkout", env=env)
    assert no_reason.returncode != 0 and "--reason" in no_reason.stderr

    assert "removed" in pilothouse("quotas", "rm", "checkout-rpm", env=env).stdout
    assert "checkout-rpm" not in pilothouse("quotas", "ls", env=env).stdout
    gone = pilothouse("quotas", "rm", "checkout-rpm", env=env)
    assert gone.returncode != 0 and "no quota named" in gone.stderr
