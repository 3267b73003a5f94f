"""The config file is refused before start with file, line and field at fault."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pilothouse.config import load_config_file
from pilothouse.settings import SettingsError, load_settings
from pilothouse.yamlfile import FileError

GOOD = """\
providers:
  sim:
    type: openai
    base_url: http://127.0.0.1:9100/v1
    api_key_env: SIM_API_KEY
models:
  fast:
    provider: sim
    model: sim-small
    pricing: {input_per_mtok: 0.15, output_per_mtok: 0.60}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pilothouse.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(FileError) as caught:
        load_config_file(path)
    return caught.value.problems


def test_the_documented_example_loads(tmp_path: Path) -> None:
    config = load_config_file(write(tmp_path, GOOD))
    assert config.models["fast"].provider == "sim"
    assert config.models["fast"].pricing.output_per_mtok == 0.60
    assert str(config.providers["sim"].base_url).startswith("http://127.0.0.1:9100/v1")


def test_unknown_provider_type_names_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("type: openai", "type: opeani"))
    assert problems(path) == [
        f"{path}:3: providers.sim.type: Input should be 'openai' or 'anthropic', got 'opeani'"
    ]


def test_model_pointing_at_undeclared_provider(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("provider: sim", "provider: simm"))
    assert problems(path) == [
        f"{path}:8: models.fast.provider: unknown provider 'simm'; declared providers: sim"
    ]


def test_misspelt_field_and_negative_price_are_both_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD.replace(
            "{input_per_mtok: 0.15, output_per_mtok: 0.60}",
            "{input_per_mtok: -1, outptu_per_mtok: 0.60}",
        ),
    )
    found = problems(path)
    assert (
        f"{path}:10: models.fast.pricing.input_per_mtok: Input should be greater than or equal to 0, got -1"
        in found
    )
    assert any(
        p.startswith(f"{path}:10: models.fast.pricing.outptu_per_mtok: unknown field")
        for p in found
    )


def test_a_key_pasted_instead_of_a_variable_name_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("api_key_env: SIM_API_KEY", "api_key_env: sk-live-123"))
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:5: providers.sim.api_key_env: must be the NAME")


def test_missing_required_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    model: sim-small\n", ""))
    assert problems(path) == [f"{path}:7: models.fast.model: required field is missing"]


def test_broken_yaml_syntax_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  fast:\n", "  fast:\n   - [\n"))
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:") and "invalid YAML" in problem


def test_wrong_type_for_a_section(tmp_path: Path) -> None:
    path = write(tmp_path, "providers: [sim]\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:1: providers: Input should be a valid dictionary")


def test_environment_and_flags_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOTHOUSE_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("PILOTHOUSE_CONFIG", str(write(tmp_path, GOOD)))
    settings = load_settings()
    assert settings.data_dir == tmp_path / "from-env"
    assert "fast" in settings.config.models
    assert load_settings(data_dir=tmp_path / "flag").data_dir == tmp_path / "flag"
    assert settings.effective_database_url.endswith("from-env/pilothouse.db")


def test_the_port_and_host_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # `PILOTHOUSE_PORT=8081 make run`: what a port in use tells you to do.
    monkeypatch.setenv("PILOTHOUSE_PORT", "8081")
    monkeypatch.setenv("PILOTHOUSE_HOST", "0.0.0.0")
    assert (load_settings().host, load_settings().port) == ("0.0.0.0", 8081)
    assert load_settings(port=9000).port == 9000  # the flag wins
    for bad in ("http", "-1", "65536", "8O81", "\u0668"):
        monkeypatch.setenv("PILOTHOUSE_PORT", bad)
        with pytest.raises(SettingsError, match=r"PILOTHOUSE_PORT must be a port number"):
            load_settings()
    result = subprocess.run(
        [sys.executable, "-m", "pilothouse", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PILOTHOUSE_PORT": "http"},
    )
    assert result.returncode == 2
    assert "PILOTHOUSE_PORT must be a port number (0-65535), not 'http'" in result.stderr


def test_serve_refuses_a_bad_file_before_starting(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("provider: sim", "provider: nowhere"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pilothouse",
            "serve",
            "--config",
            str(path),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{path}:8: models.fast.provider: unknown provider 'nowhere'" in result.stderr
    assert not (tmp_path / "d" / "pilothouse.db").exists(), (
        "nothing may be created for a bad config"
    )


FLEET = """\
providers:
  openai: {type: openai, base_url: "http://127.0.0.1:9100/v1", owner: platform-team}
  azure-eu: {type: openai, base_url: "http://127.0.0.1:9101/v1"}
models:
  fast:
    strategy: priority
    pricing: {input_per_mtok: 0.15, output_per_mtok: 0.60}
    deployments:
      - {provider: openai, model: gpt-4o-mini, priority: 1}
      - {provider: azure-eu, model: gpt-4o-mini, priority: 2, timeout_seconds: 20, pricing: {input_per_mtok: 0.2}}
fleet:
  max_attempts: 2
  breaker: {min_requests: 10, failure_ratio: 0.3}
"""


def test_the_deployments_form_loads_with_pricing_per_deployment(tmp_path: Path) -> None:
    config = load_config_file(write(tmp_path, FLEET))
    fast = config.models["fast"]
    first, second = fast.deployment_specs()
    assert (fast.provider, fast.model) == ("openai", "gpt-4o-mini")  # names the first
    assert first.pricing is not None and first.pricing.output_per_mtok == 0.60  # the alias's
    assert second.pricing is not None and second.pricing.input_per_mtok == 0.2
    assert second.timeout_seconds == 20
    assert config.fleet.max_attempts == 2 and config.fleet.breaker.failure_ratio == 0.3
    assert config.providers["openai"].owner == "platform-team"


def test_both_forms_at_once_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, FLEET.replace("    strategy: priority\n", "    provider: openai\n"))
    [problem] = problems(path)
    assert problem.startswith(f"{path}:5: models.fast: ")
    assert "either `provider` + `model`" in problem


def test_a_deployment_on_an_undeclared_provider_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, FLEET.replace("{provider: azure-eu", "{provider: azure-us"))
    assert problems(path) == [
        f"{path}:10: models.fast.deployments[1].provider: unknown provider 'azure-us'; "
        "declared providers: azure-eu, openai"
    ]


def test_an_unknown_strategy_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, FLEET.replace("strategy: priority", "strategy: fastest"))
    [problem] = problems(path)
    assert "models.fast.strategy" in problem and "least_latency" in problem


def test_the_fleet_doc_example_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "fleet.md").read_text()
    example = doc.split("```yaml\n")[1].split("```")[0]
    config = load_config_file(write(tmp_path, example))
    assert [d.provider for d in config.models["fast"].deployment_specs()] == ["openai", "azure-eu"]
    assert config.models["smart"].deployment_specs()[0].model == "gpt-4o"
