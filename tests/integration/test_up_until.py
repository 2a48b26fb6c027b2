"""`labkit up --until STAGE` refuses before booting anything when a stage up to STAGE lacks an artifact."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labkit import artifacts
from labkit.hostsetup.hoststate import HostState
from labkit.lab import destroy_by_name
from labkit.machines.domains import labs_in_libvirt
from labkit.machines.libvirt_host import libvirt_connect

from .lab_helpers import labkit_cli

pytestmark = pytest.mark.vm


def test_up_until_names_the_missing_artifact_and_boots_nothing(
    libvirt_host: HostState | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = yaml.safe_load(artifacts.CATALOG_FILE.read_text())
    for entry in catalog["artifacts"]:
        if entry["name"] == "etcd":
            entry["sha256"] = "0" * 64  # nothing in any cache has this hash: etcd counts as not cached
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(catalog))
    monkeypatch.setenv("LABKIT_CATALOG", str(catalog_file))
    try:
        result = labkit_cli("up", "three-node", "--name", "ci-until", "--until", "etcd", check=False)
        booted = "ci-until" in labs_in_libvirt(libvirt_connect())
    finally:
        destroy_by_name("ci-until")
    assert not booted
    assert result.returncode != 0
    assert "missing artifact" in result.stderr and "etcd 3.4.14" in result.stderr, result.stderr
    assert "labkit artifacts" in result.stderr
