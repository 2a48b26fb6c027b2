"""Files put on a remote host for its clones: sums kept per change (here and there), nothing copied to this
machine, the backing chain read from qemu-img. The copies themselves: tests/integration/test_remote_host.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.machines import host_files
from labkit.machines.host_files import backing_chain_files, ensure_file, local_sha256, remote_sha256
from labkit.machines.host_ssh import CommandResult
from labkit.machines.libvirt_host import LibvirtHost
from tests.unit.remote_doubles import FakeHost


def test_a_local_file_is_hashed_again_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = tmp_path / "box.img"
    box.write_bytes(b"a" * 1000)
    first = local_sha256(box)
    hashed = []
    monkeypatch.setattr(host_files.hashlib, "sha256", lambda: hashed.append(1) or pytest.fail("hashed again"))
    assert local_sha256(box) == first and not hashed
    monkeypatch.undo()
    box.write_bytes(b"b" * 1000)  # same size, new times
    assert local_sha256(box) != first


def test_a_remote_file_is_hashed_on_the_host_once_per_change() -> None:
    stamp = "524288000 12 2026-01-01 10:00:00.1 +0000 2026-01-01 10:00:00.1 +0000"
    host = FakeHost(
        {
            "stat -c": CommandResult(0, stamp + "\n", ""),
            "sh -c sha256sum": CommandResult(0, f"{'ab' * 32}  -\n{stamp}\n", ""),
        }
    )
    assert remote_sha256(host, "/var/lib/libvirt/images/box.img") == ("ab" * 32, 524288000)
    assert remote_sha256(host, "/var/lib/libvirt/images/box.img") == ("ab" * 32, 524288000)
    hashes = [argv for argv, _ in host.ran if argv[0] == "sh"]
    assert len(hashes) == 1  # the second call found the same stat line
    remote_sha256(host, "/var/lib/libvirt/images/box.img", verify=True)
    assert len([argv for argv, _ in host.ran if argv[0] == "sh"]) == 2
    gone = FakeHost({"stat -c": CommandResult(1, "", "No such file or directory")})
    assert remote_sha256(gone, "/nowhere") is None


def test_nothing_is_copied_to_this_machine(tmp_path: Path) -> None:
    box = tmp_path / "box.img"
    box.write_bytes(b"x" * 10)
    report = ensure_file(LibvirtHost(), box, "/var/lib/libvirt/images/box.img")
    assert not report.copied and report.bytes == 10 and report.seconds == 0.0


def test_the_backing_chain_is_read_from_qemu_img() -> None:
    chain = [
        {"filename": "/images/golden-node1.img", "backing-filename": "/images/box.img"},
        {"filename": "/images/box.img"},
    ]
    assert backing_chain_files(chain) == ["/images/box.img"]
    assert backing_chain_files({"filename": "/images/alone.img"}) == []
