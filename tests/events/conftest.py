"""Event tests load programs: root or skip."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def privileged() -> None:
    if os.geteuid() != 0:
        pytest.skip("loading programs needs root")
