from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def recorded(tiny_model_dir, tmp_path_factory):
    """One recorded run (see recorded.py), shared by the report tests; treat it as read-only."""
    from tests.report.recorded import build_recorded_run

    return build_recorded_run(tmp_path_factory.mktemp("report-run"), tiny_model_dir)
