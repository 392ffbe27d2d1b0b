from __future__ import annotations

import pytest

from tests.data.helpers import REPO


@pytest.fixture(scope="session")
def shipped_suites():
    from harness.evals import load_suites

    return {s.name: s for s in load_suites([REPO / "suites"])}


@pytest.fixture(scope="session")
def safety_suite(shipped_suites):
    return shipped_suites["safety"]
