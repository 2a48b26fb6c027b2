"""The per-lab key is the only one a lab's VMs accept: it is never silently replaced."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from labkit.errors import HostError
from labkit.machines.sshkeys import ensure_lab_key, forget_lab_key
from labkit.paths import LabPaths, labkit_home


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabPaths:
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    return LabPaths.for_lab("demo")


def test_lost_public_key_is_derived_from_the_private_one(lab: LabPaths) -> None:
    public = ensure_lab_key(lab)
    private = lab.ssh_key.read_bytes()
    lab.ssh_public_key.unlink()
    assert ensure_lab_key(lab).split()[:2] == public.split()[:2]
    assert lab.ssh_key.read_bytes() == private


def test_lost_lab_directory_gets_the_same_key_back(lab: LabPaths) -> None:
    public = ensure_lab_key(lab)
    for path in (lab.ssh_key, lab.ssh_public_key):
        path.unlink()
    lab.root.rmdir()
    assert ensure_lab_key(lab).split()[:2] == public.split()[:2]
    assert stat.S_IMODE(lab.ssh_key.stat().st_mode) == 0o600


def test_lost_private_key_without_a_copy_is_a_clear_error(lab: LabPaths) -> None:
    ensure_lab_key(lab)
    lab.ssh_key.unlink()
    lab.ssh_key_backup.unlink()
    with pytest.raises(HostError, match=r"private key .* is gone"):
        ensure_lab_key(lab)
    assert not lab.ssh_key.exists()  # nothing new that the VMs would refuse


def test_destroyed_lab_forgets_its_key(lab: LabPaths) -> None:
    first = ensure_lab_key(lab)
    for path in (lab.ssh_key, lab.ssh_public_key):
        path.unlink()
    forget_lab_key(lab)
    assert ensure_lab_key(lab) != first


def test_key_copy_and_home_are_private(lab: LabPaths) -> None:
    ensure_lab_key(lab)
    assert stat.S_IMODE(lab.ssh_key_backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(lab.ssh_key_backup.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(labkit_home().stat().st_mode) == 0o700


def test_home_made_private_whatever_the_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "open"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    monkeypatch.setenv("LABKIT_HOME", str(home))
    assert stat.S_IMODE(labkit_home().stat().st_mode) == 0o700


def test_tests_never_use_the_developers_artifact_store() -> None:
    import os

    from labkit.paths import artifact_store

    from ..conftest import USER_ARTIFACT_STORE

    assert artifact_store() == labkit_home()  # this test's own home
    assert str(artifact_store()) != os.environ[USER_ARTIFACT_STORE]
