"""Image fetch, verify, export and import with real parts: Debian's docker-registry on loopback, skopeo, and a
test image built from Debian's busybox-static binary (``labkit.test/busybox:1.35``; no upstream image is
faked). Every test uses its own ``LABKIT_HOME``: the user's cache is never touched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from labkit import artifacts
from labkit.artifacts import active_catalog, images, offline
from labkit.errors import HostError
from labkit.model.image_refs import read_archive

from .image_registry import SOURCE_NOTE, TEST_REFERENCE, ServedImage, missing_tools, serve_test_image

NAME = "testbox"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedImage]:
    why = missing_tools()
    if why is not None:
        pytest.skip(why)
    with serve_test_image(tmp_path_factory.mktemp("registry"), NAME) as image:
        yield image


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: ServedImage) -> Path:
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LABKIT_CATALOG", str(served.catalog_file))
    monkeypatch.delenv(artifacts.MIRROR_ENV, raising=False)
    return tmp_path / "home"


def test_fetch_through_the_mirror_pulls_by_digest_and_records_the_archive(
    home: Path, served: ServedImage
) -> None:
    image = active_catalog().image(NAME)
    assert images.cached(image) is None
    held = images.fetch(image, mirror=served.registry.url)
    assert held.path.is_relative_to(home) and held.image_id == served.image_id
    info = read_archive(held.path)
    assert info.repo_tags == (TEST_REFERENCE,)
    entry = images.recorded(image)
    assert entry is not None and entry["digest"] == served.digest and entry["archive_sha256"] == held.sha256
    assert f"docker://{served.registry.host}/labkit.test/busybox@{served.digest}" in entry["how"]
    assert images.fetch(image, mirror=served.registry.url) == held  # cached: nothing pulled again


def test_list_names_the_image_with_its_digest(home: Path, served: ServedImage) -> None:
    from labkit.cli.artifacts import app

    images.fetch(active_catalog().image(NAME), mirror=served.registry.url)
    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads(result.stdout) if r["type"] == "image" and r["name"] == NAME)
    assert row["digest"] == served.digest and row["cached"] is True and row["image_id"] == served.image_id


def test_a_wrong_digest_is_refused(home: Path, served: ServedImage, tmp_path: Path) -> None:
    catalog = yaml.safe_load(served.catalog_file.read_text())
    entry = next(i for i in catalog["images"] if i["name"] == NAME)
    entry["digest"] = "sha256:" + "0" * 64
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump(catalog))
    image = artifacts.load_catalog(tmp_path / "wrong.yaml").image(NAME)
    with pytest.raises(HostError) as caught:
        images.fetch(image, mirror=served.registry.url)
    assert "0" * 64 in caught.value.message and "failed" in caught.value.message
    assert not images.cache_path(image).exists() and images.recorded(image) is None


def test_without_a_pin_the_digest_is_recorded_at_first_pull_with_a_warning(
    home: Path, served: ServedImage, tmp_path: Path
) -> None:
    catalog = yaml.safe_load(served.catalog_file.read_text())
    next(i for i in catalog["images"] if i["name"] == NAME)["digest"] = ""
    (tmp_path / "tofu.yaml").write_text(yaml.safe_dump(catalog))
    image = artifacts.load_catalog(tmp_path / "tofu.yaml").image(NAME)
    warnings: list[str] = []
    images.fetch(image, mirror=served.registry.url, warn=warnings.append)
    assert images.expected_digest(image) == served.digest
    assert len(warnings) == 1 and served.digest in warnings[0] and "no public digest" in warnings[0]


def test_a_corrupted_cached_archive_is_refused_naming_both_sha256(home: Path, served: ServedImage) -> None:
    image = active_catalog().image(NAME)
    held = images.fetch(image, mirror=served.registry.url)
    with held.path.open("r+b") as handle:
        handle.seek(held.path.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(HostError) as caught:
        images.require(image)
    got = images.file_sha256(held.path)
    assert held.sha256 in caught.value.message and got in caught.value.message
    assert images.cached(image) is None


def test_export_then_import_on_another_host_round_trips_verified(
    home: Path, served: ServedImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = active_catalog().image(NAME)
    held = images.fetch(image, mirror=served.registry.url)
    export = tmp_path / "usb"
    written = offline.export_dir([], [image], export)
    assert export / artifacts.LOCK_FILE_NAME in written
    lock = json.loads((export / artifacts.LOCK_FILE_NAME).read_text())
    assert lock["images"][TEST_REFERENCE]["digest"] == served.digest

    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "offline-home"))  # the offline host
    assert images.cached(image) is None
    from labkit.cli.artifacts import app

    result = CliRunner().invoke(app, ["import", str(export), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["status"] for r in rows] == ["imported"], rows
    again = images.require(image)
    assert again.sha256 == held.sha256 and again.image_id == served.image_id
    assert again.path.is_relative_to(tmp_path / "offline-home")


def test_import_refuses_a_corrupted_export_and_one_without_its_lock(
    home: Path, served: ServedImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = active_catalog().image(NAME)
    images.fetch(image, mirror=served.registry.url)
    export = tmp_path / "usb"
    offline.export_dir([], [image], export)
    archive = next((export / offline.IMAGES_DIR).rglob("*.tar"))
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "offline-home"))

    data = bytearray(archive.read_bytes())
    data[-2000] ^= 0xFF  # inside the layer: still a readable archive, not the exported bytes
    archive.write_bytes(bytes(data))
    (result,) = offline.import_all(export)
    assert result.status == "refused" and "corrupted or replaced" in result.message
    assert images.cached(image) is None

    (export / artifacts.LOCK_FILE_NAME).unlink()
    (result,) = offline.import_all(export)
    assert result.status == "refused" and "cannot verify" in result.message


def test_the_test_image_is_named_as_a_test_image(served: ServedImage) -> None:
    catalog = artifacts.load_catalog(served.catalog_file)
    assert (
        catalog.image(NAME).reference.startswith("labkit.test/") and catalog.image(NAME).source == SOURCE_NOTE
    )
