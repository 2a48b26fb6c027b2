"""The .box file (``metadata.json``, a tiny ``Vagrantfile``, ``labkit.json`` and the qcow2 ``box.img`` in a
tar) and its registration: ``vagrant box add`` of a local metadata catalog, so the box gets a version."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labkit.hostsetup.box.buildlog import BuildLog
from labkit.hostsetup.box.definition import BoxDefinition
from labkit.hostsetup.box.disk import MiB
from labkit.hostsetup.box.installed import LABKIT_METADATA, PROVIDER, vagrant_env


def write_box_metadata(box_dir: Path, definition: BoxDefinition, labkit_meta: Mapping[str, Any]) -> None:
    """The files beside ``box.img``: vagrant-libvirt's metadata.json, the Vagrantfile, labkit.json."""
    (box_dir / "metadata.json").write_text(
        json.dumps({"provider": PROVIDER, "format": "qcow2", "virtual_size": definition.disk_size_gib})
        + "\n",
        encoding="utf-8",
    )
    (box_dir / "Vagrantfile").write_text(_vagrantfile(), encoding="utf-8")
    (box_dir / LABKIT_METADATA).write_text(json.dumps(labkit_meta, indent=2) + "\n", encoding="utf-8")


def partial_box_file(box_file: Path) -> Path:
    """Where the .box is written before it is complete."""
    return box_file.with_name(box_file.name + ".part")


def package_box(log: BuildLog, box_dir: Path, box_file: Path) -> None:
    partial = partial_box_file(box_file)
    log.run(
        [
            "tar",
            "-C",
            str(box_dir),
            "-cf",
            str(partial),
            "metadata.json",
            "Vagrantfile",
            LABKIT_METADATA,
            "box.img",
        ],
        what="package the .box",
    )
    partial.rename(box_file)


def write_catalog(definition: BoxDefinition, version: str, box_file: Path, catalog: Path, work: Path) -> None:
    """Replace ``catalog`` (written in ``work`` first) with one that offers ``box_file`` as ``version``.

    A local metadata catalog gives the box its version; it stays beside the .box so that
    `vagrant box outdated` and vagrant's update check find it.
    """
    catalog_data = {
        "name": definition.name,
        "description": definition.description,
        "versions": [
            {
                "version": version,
                "providers": [
                    {
                        "name": PROVIDER,
                        "url": box_file.resolve().as_uri(),
                        "checksum_type": "sha256",
                        "checksum": _sha256_file(box_file),
                    }
                ],
            }
        ],
    }
    tmp_catalog = work / "catalog.json"
    tmp_catalog.write_text(json.dumps(catalog_data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_catalog, catalog)


def add_box(log: BuildLog, catalog: Path) -> None:
    log.run(
        ["vagrant", "box", "add", "--provider", PROVIDER, catalog.resolve().as_uri()],
        what="vagrant box add",
        env=vagrant_env(),
        timeout=900,
    )


def _vagrantfile() -> str:
    return (
        "# Defaults of labkit's box; a lab's own Vagrantfile overrides them.\n"
        'Vagrant.configure("2") do |config|\n'
        "  config.vm.guest = :debian\n"
        '  config.vm.synced_folder ".", "/vagrant", disabled: true\n'
        "  config.vm.provider :libvirt do |libvirt|\n"
        '    libvirt.disk_bus = "virtio"\n'
        "  end\n"
        "end\n"
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(4 * MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["add_box", "package_box", "partial_box_file", "write_box_metadata", "write_catalog"]
