from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


# The developer's artifact store (cache + lock), as it was before the tests replaced it: only tests marked
# `real_artifacts` use it, and they never remove anything from it.
USER_ARTIFACT_STORE = "LABKIT_TEST_USER_ARTIFACT_STORE"


def pytest_configure(config: pytest.Config) -> None:
    """Before any fixture runs: the whole session gets an artifact store of its own, so no test (nor a
    module or session fixture, nor a `labkit` subprocess) can touch the developer's cache or lock file."""
    from labkit import paths

    os.environ[USER_ARTIFACT_STORE] = str(paths.artifact_store())
    store = tempfile.mkdtemp(prefix="labkit-test-artifacts-")
    os.environ["LABKIT_ARTIFACT_STORE"] = store
    config.add_cleanup(lambda: shutil.rmtree(store, ignore_errors=True))


@pytest.fixture(autouse=True)
def _isolated_labkit_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Unit tests never see the developer's labs, scenarios or artifacts (a home of their own, the store in
    it); VM tests keep the real home (the box is shared) with the session's own artifact store; a test
    marked ``real_artifacts`` (the end-to-end course needs the real release binaries and images) reads the
    developer's store."""
    if request.node.get_closest_marker("vm") is None:
        monkeypatch.setenv("LABKIT_HOME", str(tmp_path_factory.mktemp("labkit-home")))
        monkeypatch.delenv("LABKIT_ARTIFACT_STORE")
    elif request.node.get_closest_marker("real_artifacts") is not None:
        monkeypatch.setenv("LABKIT_ARTIFACT_STORE", os.environ[USER_ARTIFACT_STORE])


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
