"""The broken-config corpus: every case fails with exactly its expected diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_support import BROKEN, config_path, install, messages

from pulse.config import load_config
from pulse.errors import ConfigError

CASES = sorted(p.name for p in BROKEN.iterdir() if p.is_dir())


def test_corpus_covers_both_formats_with_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert sum(c.startswith("toml-") for c in CASES) >= 10
    assert sum(c.startswith("legacy-") for c in CASES) >= 20


@pytest.mark.parametrize("case", CASES)
def test_broken_config_reports_expected_errors(case: str, tmp_path: Path) -> None:
    d = install(BROKEN / case, tmp_path)
    expected = (BROKEN / case / "expected.txt").read_text().splitlines()
    with pytest.raises(ConfigError) as info:
        load_config(config_path(d), node="alpha")
    assert messages(info.value, d) == expected
    assert all(diag.severity == "error" for diag in info.value.diagnostics)
