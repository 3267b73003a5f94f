"""The `request_log:` section of the config file: the journal's knobs, checked before start."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilothouse.config import RequestLogSpec, load_config_file
from pilothouse.yamlfile import FileError


def test_the_knobs_load_and_default(tmp_path: Path) -> None:
    path = tmp_path / "pilothouse.yaml"
    path.write_text("request_log:\n  journal_interval_ms: 40\n  journal_max_bytes: 2097152\n")
    spec = load_config_file(path).request_log
    assert spec.journal_interval_ms == 40 and spec.journal_max_bytes == 2 << 20
    assert spec.journal_fsync_interval_seconds == RequestLogSpec().journal_fsync_interval_seconds


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("journal_interval_ms: 0", "request_log.journal_interval_ms"),
        ("journal_max_bytes: 1000", "request_log.journal_max_bytes"),
        ("journal_fsync_interval_seconds: -1", "request_log.journal_fsync_interval_seconds"),
        ("spool: true", "request_log.spool"),
    ],
)
def test_a_bad_knob_is_refused_with_its_line(tmp_path: Path, line: str, field: str) -> None:
    path = tmp_path / "pilothouse.yaml"
    path.write_text(f"request_log:\n  {line}\n")
    with pytest.raises(FileError) as caught:
        load_config_file(path)
    assert any(f"pilothouse.yaml:2: {field}" in p for p in caught.value.problems)
