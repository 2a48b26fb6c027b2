"""Image references, the registry mirror mapping, docker-archive manifests, catalog images and the image step's
arguments: pure logic, no registry."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from labkit import artifacts
from labkit.errors import UsageError
from labkit.kinds.compile import load_scenario
from labkit.kinds.steps.image import ImageArgs
from labkit.model.image_refs import (
    ImageRef,
    ImageRefError,
    parse_archive_manifest,
    parse_reference,
    pull_source,
    read_archive,
    same_image,
)
from labkit.model.scenario import Images

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox:1.28", ImageRef("docker.io", "library/busybox", "1.28")),
        ("registry.k8s.io/pause:3.2", ImageRef("registry.k8s.io", "pause", "3.2")),
        ("gcr.io/google-samples/hello-app:1.0", ImageRef("gcr.io", "google-samples/hello-app", "1.0")),
        ("localhost:5000/a/b:x", ImageRef("localhost:5000", "a/b", "x")),
        ("coredns/coredns:1.7.0", ImageRef("docker.io", "coredns/coredns", "1.7.0")),
        ("labkit.test/busybox:1.35", ImageRef("labkit.test", "busybox", "1.35")),
    ],
)
def test_references_are_normalized_as_docker_does(text: str, expected: ImageRef) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("busybox", "no tag"),
        ("localhost:5000/busybox", "no tag"),
        ("busybox:1.28@" + DIGEST, "digest"),
        ("Busybox:1.28", "repository"),
        ("busybox:", "tag"),
    ],
)
def test_bad_references_say_why(text: str, why: str) -> None:
    with pytest.raises(ImageRefError, match=why):
        parse_reference(text)


def test_same_image_compares_normalized_references() -> None:
    assert same_image("busybox:1.28", "docker.io/library/busybox:1.28")
    assert not same_image("busybox:1.28", "busybox:1.29")
    assert not same_image("busybox:1.28", "not a reference")


def test_upstream_pull_is_by_digest_with_tls() -> None:
    source = pull_source(parse_reference("registry.k8s.io/pause:3.2"), DIGEST, None)
    assert source.transport_ref == f"docker://registry.k8s.io/pause@{DIGEST}" and source.tls_verify


def test_mirror_keeps_the_registry_host_as_first_component() -> None:
    ref = parse_reference("busybox:1.28")
    plain = pull_source(ref, DIGEST, "http://10.0.0.1:5000")
    assert plain.transport_ref == f"docker://10.0.0.1:5000/docker.io/library/busybox@{DIGEST}"
    assert plain.tls_verify is False
    prefixed = pull_source(ref, DIGEST, "https://mirror.example/labkit/")
    assert prefixed.transport_ref == f"docker://mirror.example/labkit/docker.io/library/busybox@{DIGEST}"
    assert prefixed.tls_verify is True


def test_without_a_digest_the_tag_is_pulled_and_a_file_mirror_cannot_serve_images() -> None:
    ref = parse_reference("registry.k8s.io/pause:3.2")
    assert pull_source(ref, None, None).transport_ref == "docker://registry.k8s.io/pause:3.2"
    with pytest.raises(ImageRefError, match="http"):
        pull_source(ref, DIGEST, "file:///srv/mirror")
    with pytest.raises(ImageRefError, match="digest"):
        pull_source(ref, "sha256:short", None)


# ---- docker-archive ------------------------------------------------------------------------------------------


def test_archive_manifest_parsing() -> None:
    data = json.dumps([{"Config": "abc.json", "RepoTags": ["busybox:1.28"], "Layers": ["l/layer.tar"]}])
    assert parse_archive_manifest(data.encode()) == ("abc.json", ("busybox:1.28",), 1)
    for bad, why in [
        (b"{", "not JSON"),
        (b"[]", "exactly one"),
        (json.dumps([{"RepoTags": [], "Layers": ["x"]}]).encode(), "no Config"),
        (json.dumps([{"Config": "c", "Layers": []}]).encode(), "no Layers"),
    ]:
        with pytest.raises(ImageRefError, match=why):
            parse_archive_manifest(bad)


def _archive(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_image_id_is_the_sha256_of_the_config(tmp_path: Path) -> None:
    config = b'{"rootfs": {}}'
    manifest = json.dumps([{"Config": "cfg.json", "RepoTags": ["a.test/x:1"], "Layers": ["l.tar"]}]).encode()
    _archive(tmp_path / "a.tar", {"manifest.json": manifest, "cfg.json": config, "l.tar": b""})
    info = read_archive(tmp_path / "a.tar")
    assert info.image_id == "sha256:" + hashlib.sha256(config).hexdigest()
    assert info.repo_tags == ("a.test/x:1",) and info.layers == 1
    _archive(tmp_path / "b.tar", {"manifest.json": manifest})
    with pytest.raises(ImageRefError, match=r"no cfg\.json"):
        read_archive(tmp_path / "b.tar")
    (tmp_path / "c.tar").write_bytes(b"not a tar")
    with pytest.raises(ImageRefError, match="not a readable docker-archive"):
        read_archive(tmp_path / "c.tar")


# ---- catalog and scenario ------------------------------------------------------------------------------------


def _catalog(tmp_path: Path, images: list[dict[str, Any]]) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"artifacts": [], "images": images}))
    return path


def test_the_shipped_catalog_pins_the_four_course_images_with_sources() -> None:
    catalog = artifacts.load_catalog()
    scenario = load_scenario("three-node")
    chosen = catalog.images_for(scenario.images.by_role())
    assert [i.name for i in chosen] == ["pause", "hello-app", "busybox", "coredns"]
    assert all(i.pinned and i.source for i in chosen)
    assert (
        catalog.image("busybox:1.28")
        is catalog.image("busybox")
        is catalog.image("docker.io/library/busybox:1.28")
    )


def test_catalog_image_validation_names_the_entry(tmp_path: Path) -> None:
    bad = {"name": "x", "reference": "x:1", "digest": "sha256:nothex", "source": "s"}
    with pytest.raises(UsageError, match=r"images\.0\.digest"):
        artifacts.load_catalog(_catalog(tmp_path, [bad]))
    twice = {"name": "x", "reference": "x:1", "source": "s"}
    with pytest.raises(UsageError, match="listed twice"):
        artifacts.load_catalog(_catalog(tmp_path, [twice, {**twice, "name": "y"}]))
    no_tag = {"name": "x", "reference": "x", "source": "s"}
    with pytest.raises(UsageError, match="no tag"):
        artifacts.load_catalog(_catalog(tmp_path, [no_tag]))


def test_a_scenario_image_the_catalog_lacks_is_named_with_its_role(tmp_path: Path) -> None:
    catalog = artifacts.load_catalog(_catalog(tmp_path, [{"name": "x", "reference": "x:1", "source": "s"}]))
    with pytest.raises(UsageError) as caught:
        catalog.images_for(Images(pause="x:1", web="y:2").by_role(), "s.yaml: images")
    assert "s.yaml: images.web: y:2" in caught.value.message and "pause" not in caught.value.message
    with pytest.raises(UsageError, match="no image 'z'"):
        catalog.image("z")


def test_scenario_images_must_be_references() -> None:
    assert Images(client="busybox:1.28").by_role() == {"client": "busybox:1.28"}
    with pytest.raises(ValueError, match="no tag"):
        Images(pause="registry.k8s.io/pause")


def test_image_step_takes_a_role_or_a_reference() -> None:
    assert ImageArgs(name="pause").name == "pause"
    assert ImageArgs(name="busybox:1.28").name == "busybox:1.28"
    with pytest.raises(ValueError, match="neither an images: role"):
        ImageArgs(name="Pause")
