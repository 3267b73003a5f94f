"""One admin credential per deployment: every instance on a database accepts the same
token (even one started with another PILOTHOUSE_ADMIN_TOKEN, which is ignored, loudly);
`pilothouse admin rotate-token` takes effect on every instance within a second; an older
data dir's hash file moves into the store; `admin reset-token` is the way back in."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness import ADMIN_TOKEN, Gateway, Simulator, gateway_config, start_gateway


def status(gw: Gateway, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(gw.url + "/api/keys", headers=headers, timeout=10).status_code


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize("shared", ["sqlite", "postgresql"])
def test_every_instance_accepts_the_one_token_and_a_rotation_reaches_all_within_a_second(
    simulator: Simulator, tmp_path: Path, shared: str, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'shared.db'}"
        if shared == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    first = start_gateway(gateway_config(simulator), url, tmp_path / "a")
    # Started with another token in its environment: ignored (it would be a second key).
    second = start_gateway(
        gateway_config(simulator), url, tmp_path / "b", {"PILOTHOUSE_ADMIN_TOKEN": "pha-other"}
    )
    try:
        assert status(first, ADMIN_TOKEN) == 200 and status(second, ADMIN_TOKEN) == 200
        assert status(second, "pha-other") == 401
        assert "PILOTHOUSE_ADMIN_TOKEN is not this deployment's admin token" in second.output()

        rotated = cli(
            "admin",
            "rotate-token",
            "--reason",
            "test",
            PILOTHOUSE_URL=second.url,
            PILOTHOUSE_ADMIN_TOKEN=ADMIN_TOKEN,
        )
        assert rotated.returncode == 0, rotated.stderr
        new = rotated.stdout.split("PILOTHOUSE_ADMIN_TOKEN=")[1].split()[0]
        rotated_at = time.monotonic()
        for gw in (second, first):
            while status(gw, ADMIN_TOKEN) != 401 or status(gw, new) != 200:
                assert time.monotonic() - rotated_at < 1.0, (
                    f"{gw.url} still takes the old token:\n{gw.output()[-3000:]}"
                )
                time.sleep(0.02)
        history = httpx.get(
            second.url + "/api/keys", headers={"Authorization": f"Bearer {new}"}
        ).status_code
        assert history == 200
    finally:
        first.stop()
        second.stop()
    # A restart with the old token in the environment does not undo the rotation.
    again = start_gateway(gateway_config(simulator), url, tmp_path / "a")
    try:
        assert status(again, ADMIN_TOKEN) == 401 and status(again, new) == 200
        reset = cli(
            "admin",
            "reset-token",
            "--from-env",
            "--data-dir",
            str(tmp_path / "a"),
            PILOTHOUSE_DATABASE_URL=url,
            PILOTHOUSE_ADMIN_TOKEN=ADMIN_TOKEN,
        )
        assert reset.returncode == 0, reset.stderr
        deadline = time.monotonic() + 5
        while status(again, ADMIN_TOKEN) != 200:
            assert time.monotonic() < deadline, "the reset token was not taken"
            time.sleep(0.05)
        assert status(again, new) == 401
    finally:
        again.stop()


def test_an_older_data_dirs_hash_file_moves_into_the_store(
    simulator: Simulator, tmp_path: Path
) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    legacy = "pha-from-an-older-version"
    (data_dir / "admin-token.sha256").write_text(hashlib.sha256(legacy.encode()).hexdigest())
    gw = start_gateway(
        gateway_config(simulator),
        f"sqlite:///{data_dir / 'p.db'}",
        data_dir,
        {"PILOTHOUSE_ADMIN_TOKEN": ""},
    )
    try:
        assert status(gw, legacy) == 200
        assert not (data_dir / "admin-token.sha256").exists()
        assert "Admin token" not in gw.output()  # nothing new was generated or printed
    finally:
        gw.stop()
