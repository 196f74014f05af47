from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def data_dir() -> Path:
    return DATA


def is_root() -> bool:
    return os.geteuid() == 0


# failfast's real reboot refuses to act while this is set; every daemon a test starts
# in a child process (the lab's `pulse run`, the signal tests) inherits it.
os.environ["PULSE_NEVER_REBOOT"] = "1"
