"""The whole three-node course, chapter by chapter, solved and checked on real VMs.

It needs the real Kubernetes, flanneld and CNI release binaries and the course's container images (pause,
hello-app, busybox, CoreDNS, by digest) in the host's artifact cache (`labkit artifacts fetch three-node` on a
machine with internet, or `labkit artifacts import DIR` of an export). They cannot be downloaded on the CI
machines and are never faked: there the test skips, naming every missing artifact and image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from labkit.artifacts import artifacts_for, cached_path, describe_missing, images, load_catalog
from labkit.hostsetup.hoststate import HostState
from labkit.kinds.compile import load_scenario
from labkit.lab import destroy_by_name

from ..conftest import USER_ARTIFACT_STORE
from .lab_helpers import labkit_cli

pytestmark = [pytest.mark.vm, pytest.mark.real_artifacts]

LAB = "ci-course"


@pytest.fixture(scope="module")
def course_artifacts() -> Iterator[None]:
    # the developer's own store (tests/conftest.py gives every other test a store of its own)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABKIT_ARTIFACT_STORE", os.environ[USER_ARTIFACT_STORE])
        _require_course_artifacts()
        yield


def _require_course_artifacts() -> None:
    scenario = load_scenario("three-node")
    # the shipped catalog, not a test one: this test is about the real binaries and images
    catalog = load_catalog()
    missing = [a for a in artifacts_for(scenario.versions, catalog) if cached_path(a) is None]
    missing_images = images.missing(catalog.images_for(scenario.images.by_role()))
    if missing or missing_images:
        message, hint = describe_missing(missing, scenario.name, missing_images)
        pytest.skip(f"{message}; {hint}")


@pytest.fixture(scope="module")
def course_lab(libvirt_host: HostState | None, course_artifacts: None) -> Iterator[str]:
    destroy_by_name(LAB)
    try:
        yield LAB
    finally:
        destroy_by_name(LAB)


def test_every_chapter_solves_and_passes_its_checks(course_lab: str) -> None:
    labkit_cli("up", "three-node", "--name", course_lab, "--until", "kube-dns", timeout=5400)
    listing = json.loads(labkit_cli("snapshots", "--name", course_lab, "--json").stdout)
    verified = {s["name"] for s in listing["snapshots"] if s["verified"]}
    scenario = load_scenario("three-node")
    assert {f"{s.name}-ok" for s in scenario.stages if s.checks} <= verified, sorted(verified)
    reset = json.loads(labkit_cli("reset", "flannel-ok", "--name", course_lab, "--json").stdout)
    assert reset["stage"] == "flannel"
    passed = json.loads(labkit_cli("check", "flannel", "--name", course_lab, "--json").stdout)
    assert passed["passed"] is True
