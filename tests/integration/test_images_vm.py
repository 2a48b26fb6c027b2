"""Images delivered to the real three-node lab from the host's cache: stage ``cri`` loads the sandbox image on
every node, a container of it runs there, a second solve changes nothing, a corrupted archive is refused.

The test image is ``labkit.test/busybox:1.35``, built from Debian's busybox-static binary (never an upstream
image dressed up), pushed into Debian's docker-registry on the test's loopback and fetched by digest through
labkit's mirror mapping. A copy of the three-node scenario names it as its ``images.pause``; a copy of the
catalog pins its digest. The shared lab (``three_node_up``) is booted once for the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit import paths
from labkit.artifacts import MissingArtifactsError, active_catalog, editing_lock, images
from labkit.errors import HostError
from labkit.kinds.compile import load_scenario
from labkit.lab import Lab

from .image_registry import TEST_REFERENCE, ServedImage, missing_tools, serve_test_image
from .lab_helpers import NODES

pytestmark = pytest.mark.vm

NAME = "testbox"


def _forget_test_image() -> None:
    """Remove the test image from the host cache and lock file (the developer's cache never keeps it)."""
    shutil.rmtree(paths.artifact_cache_dir() / "images" / NAME, ignore_errors=True)
    with contextlib.suppress(OSError):
        (paths.artifact_cache_dir() / "images").rmdir()  # only when nothing else is cached there
    with editing_lock() as data:
        data.get("images", {}).pop(f"{TEST_REFERENCE}", None)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedImage]:
    why = missing_tools()
    if why is not None:
        pytest.skip(why)
    _forget_test_image()
    with (
        serve_test_image(tmp_path_factory.mktemp("image-registry"), NAME) as image,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("LABKIT_CATALOG", str(image.catalog_file))
        try:
            yield image
        finally:
            _forget_test_image()


@pytest.fixture(scope="module")
def image_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of three-node whose sandbox image is the test image."""
    source = load_scenario("three-node").directory
    assert source is not None
    copy = tmp_path_factory.mktemp("scenario") / "three-node"
    shutil.copytree(source, copy)
    text = (copy / "scenario.yaml").read_text(encoding="utf-8")
    shipped = load_scenario("three-node").images.pause
    line = f"  pause: {shipped}"
    assert text.count(line) == 1, "the test expects the shipped images.pause on one line"
    (copy / "scenario.yaml").write_text(text.replace(line, f"  pause: {TEST_REFERENCE}"), "utf-8")
    assert load_scenario(copy).images.pause == TEST_REFERENCE
    return copy


@pytest.fixture
def lab(three_node_lab: Lab, image_scenario: Path) -> Lab:
    return Lab(load_scenario(image_scenario), three_node_lab.name, three_node_lab.state)


def _image_id(lab: Lab, node: str) -> str:
    ran = lab.run(node, f"sudo docker image inspect --format '{{{{.Id}}}}' {TEST_REFERENCE} || true")
    return str(ran.stdout).strip()


def test_preflight_names_the_missing_image_before_any_node(lab: Lab, served: ServedImage) -> None:
    with pytest.raises(MissingArtifactsError) as caught:
        lab.preflight(["cri"])
    assert TEST_REFERENCE in caught.value.message and served.digest in caught.value.message
    assert "labkit artifacts fetch" in (caught.value.hint or "")


def test_cri_loads_the_sandbox_image_on_every_node_and_it_runs(lab: Lab, served: ServedImage) -> None:
    started = time.monotonic()
    held = images.fetch(active_catalog().image(NAME), mirror=served.registry.url)
    print(f"\nfetch through the loopback registry: {time.monotonic() - started:.1f} s")
    assert held.image_id == served.image_id
    lab.preflight(["cri"])
    started = time.monotonic()
    report = lab.solve("cri", verify=False)
    print(f"solve cri (docker load on 3 nodes): {time.monotonic() - started:.1f} s")
    assert not report.failed, report.summary()
    for node in NODES:
        assert report.results[node]["pause-image"].status == "changed", report.summary()
        assert _image_id(lab, node) == served.image_id
        # with Docker's default AppArmor profile, as kubelet's dockershim starts every pod
        ran = lab.run(
            node, f"sudo docker run --rm --network none {TEST_REFERENCE} /bin/busybox echo labkit-{node}"
        )
        assert ran.stdout.strip() == f"labkit-{node}", ran.stdout + ran.stderr


def test_second_solve_changes_nothing(lab: Lab, served: ServedImage) -> None:
    started = time.monotonic()
    again = lab.solve("cri", verify=False)
    print(f"\nsecond solve cri: {time.monotonic() - started:.1f} s")
    assert not again.failed and again.changed_count == 0, again.summary()
    plan = lab.solve("cri", plan=True)
    assert plan.changed_count == 0, plan.summary()


def test_a_corrupted_archive_is_refused_before_any_node_is_touched(lab: Lab, served: ServedImage) -> None:
    catalog = active_catalog()
    held = images.require(catalog.image(NAME))
    assert lab.run("node1", f"sudo docker rmi {TEST_REFERENCE}").ok
    data = bytearray(held.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    held.path.write_bytes(bytes(data))
    os.utime(held.path)
    with pytest.raises(HostError) as caught:
        lab.solve("cri", verify=False)
    message = caught.value.message
    assert held.sha256 in message and images.cache_path(catalog.image(NAME)).name in message
    got = images.file_sha256(held.path)
    assert got in message and got != held.sha256
    assert _image_id(lab, "node1") == "", "the refused archive must not reach a node"
    # a fresh fetch replaces it, and the next solve loads it again
    images.cache_path(catalog.image(NAME)).unlink()
    images.fetch(catalog.image(NAME), mirror=served.registry.url)
    repaired = lab.solve("cri", verify=False)
    assert not repaired.failed and repaired.changed_count == 1, repaired.summary()
    assert _image_id(lab, "node1") == served.image_id
