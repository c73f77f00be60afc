"""AppTest: the app starts and shows the detector status without any weights installed."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated(weights_home):
    yield


def test_home_starts_and_lists_detectors_as_not_installed():
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=120).run()
    assert not at.exception
    df = at.dataframe[0].value
    assert {"CLIP-D", "R50_TF", "R50_nodown", "P2G", "NPR", "FACE"} <= set(df["detector"])
    assert set(df["status"]) == {"weights not installed"}
