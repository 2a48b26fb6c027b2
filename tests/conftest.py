from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_labkit_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Unit tests never see the developer's labs or scenarios; VM tests keep the real home (the box is shared)."""
    if request.node.get_closest_marker("vm") is None:
        monkeypatch.setenv("LABKIT_HOME", str(tmp_path_factory.mktemp("labkit-home")))
