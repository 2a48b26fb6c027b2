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


# ---- a run that needs the VM tests fails when none of them ran (scripts/test.sh sets LABKIT_REQUIRE_VM=1) ----

_vm_outcomes: dict[str, int] = {"ran": 0, "skipped": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "vm" not in report.keywords:
        return
    if report.skipped:
        _vm_outcomes["skipped"] += 1
    elif report.when == "call":
        _vm_outcomes["ran"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import os

    if os.environ.get("LABKIT_REQUIRE_VM") != "1" or _vm_outcomes["ran"] or not _vm_outcomes["skipped"]:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = (
        f"every vm test was skipped ({_vm_outcomes['skipped']}; reasons above): the VM suite did not run, "
        "which is a failure here (run as root on a host with libvirtd, or unset LABKIT_REQUIRE_VM)"
    )
    if reporter is not None:
        reporter.write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
