"""The real box build: mmdebstrap from the host's mirror, disk image, GRUB, vagrant box add. No VM is booted.

Uses the default LABKIT_HOME on purpose: the box is built once per machine and shared with the labs (and
the lifecycle tests); a later run finds it up to date in a second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from labkit import paths
from labkit.hostsetup import box

pytestmark = pytest.mark.vm


def _vagrant(*args: str) -> str:
    env = {**os.environ, "VAGRANT_HOME": str(paths.vagrant_home()), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    proc = subprocess.run(
        ["vagrant", *args], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return proc.stdout


@pytest.fixture(scope="session")
def built_box() -> box.BoxInfo:
    if os.geteuid() != 0:
        pytest.skip("building a box needs root (mmdebstrap --mode=root)")
    for tool in ("mmdebstrap", "vagrant", "qemu-img", "mke2fs", "sfdisk", "grub-mkimage"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    return box.build_box(box.DEFAULT_BOX)


def test_box_is_listed_by_vagrant(built_box: box.BoxInfo) -> None:
    assert built_box.name == "labkit/debian12"
    assert built_box.current
    lines = _vagrant("box", "list", "--machine-readable").splitlines()
    fields = [line.split(",", 3)[2:] for line in lines]
    names = [value for kind, value in fields if kind == "box-name"]
    versions = [value for kind, value in fields if kind == "box-version"]
    providers = [value for kind, value in fields if kind == "box-provider"]
    assert (built_box.name, "libvirt", built_box.version) in zip(names, providers, versions, strict=True)


def test_box_is_current_and_listed_by_labkit(built_box: box.BoxInfo) -> None:
    assert box.box_is_current(box.DEFAULT_BOX)
    listed = {(b.name, b.version): b for b in box.list_boxes()}
    info = listed[(built_box.name, built_box.version)]
    assert info.content_hash == box.content_hash(paths.boxes_dir() / box.DEFAULT_BOX)
    assert info.current
    assert (info.path / "box.img").is_file()
    assert 50 * box.MiB < info.size < 600 * box.MiB


def test_second_build_is_skipped_quickly(built_box: box.BoxInfo) -> None:
    messages: list[str] = []
    started = time.monotonic()
    again = box.build_box(box.DEFAULT_BOX, progress=messages.append)
    assert time.monotonic() - started < 5
    assert again.version == built_box.version
    assert messages[0] == f"box labkit/debian12 v{built_box.version} is up to date"
    assert box.ensure_box(box.DEFAULT_BOX).version == built_box.version


def _sectors(image: Path, tmp_path: Path, count: int) -> bytes:
    out = tmp_path / "head.raw"
    subprocess.run(
        [
            "qemu-img",
            "dd",
            "-f",
            "qcow2",
            "-O",
            "raw",
            "bs=512",
            f"count={count}",
            f"if={image}",
            f"of={out}",
        ],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def test_qcow2_has_a_bootable_mbr_with_grub(built_box: box.BoxInfo, tmp_path: Path) -> None:
    image = built_box.path / "box.img"
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(image)], check=True, capture_output=True, text=True
        ).stdout
    )
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == 8 * 1024**3
    head = _sectors(image, tmp_path, 2)
    mbr, core = head[:512], head[512:1024]
    assert mbr[510:512] == b"\x55\xaa"
    grub = Path("/usr/lib/grub/i386-pc")
    assert mbr[:440] == (grub / "boot.img").read_bytes()[:440], "MBR code is GRUB's boot.img"
    assert b"GRUB " in mbr
    assert core[:0x100] == (grub / "diskboot.img").read_bytes()[:0x100], "core.img follows the MBR"
    partition = mbr[446:462]
    assert partition[0] == 0x80, "partition 1 is active"
    assert partition[4] == 0x83, "partition 1 is Linux"
    assert int.from_bytes(partition[8:12], "little") == 2048, "partition 1 starts at 1 MiB"


def test_box_file_has_libvirt_metadata(built_box: box.BoxInfo) -> None:
    (box_file,) = (paths.box_build_dir() / box.DEFAULT_BOX).glob(f"*-{built_box.version}.box")
    with tarfile.open(box_file) as tar:
        names = set(tar.getnames())
        assert {"metadata.json", "Vagrantfile", "box.img", "labkit.json"} <= names
        metadata_file = tar.extractfile("metadata.json")
        assert metadata_file is not None
        metadata = json.load(metadata_file)
        labkit_file = tar.extractfile("labkit.json")
        assert labkit_file is not None
        labkit_meta = json.load(labkit_file)
    assert metadata == {"provider": "libvirt", "format": "qcow2", "virtual_size": 8}
    assert labkit_meta["content_hash"] == built_box.content_hash
    assert labkit_meta["version"] == built_box.version
    assert "docker.io" in labkit_meta["packages"]
    assert "usrmerge" not in labkit_meta["packages"]
