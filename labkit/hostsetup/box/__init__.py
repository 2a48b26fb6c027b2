"""Build labkit's Vagrant base boxes locally from Debian packages, and list the ones installed.

A box definition is data: ``boxes/<name>/box.yaml`` plus overlay files under ``boxes/<name>/files/``.
:func:`build_box` turns it into a libvirt box without downloading anything but Debian packages from the
host's own apt mirror:

1. ``mmdebstrap --mode=root --variant=minbase`` into a directory (overlay files go in before the packages
   are installed, so the kernel's initramfs is generated once, with labkit's module list);
2. the image is configured from the host: user, SSH key, sudoers, systemd units, fstab, GRUB config;
3. a raw disk without loop mounts: ``truncate``, ``sfdisk``, ``mke2fs -d`` at a 1 MiB offset, GRUB's
   ``core.img`` (``grub-mkimage -O i386-pc``, all modules built in) after the MBR and ``boot.img`` in it;
4. ``qemu-img convert -c`` to qcow2, ``metadata.json``, a tiny ``Vagrantfile``, ``labkit.json``, ``tar``;
5. ``vagrant box add`` of a local metadata catalog (so the box gets a version), in labkit's VAGRANT_HOME.

The box version encodes a hash of the definition directory (see :func:`content_hash` and
:func:`box_version`): building an unchanged definition again is skipped unless forced, and older
versions of the box are removed (with the volume vagrant-libvirt uploaded to the libvirt pool) unless a
Vagrant machine still uses them. Nothing here boots a VM.

The modules, one job each: :mod:`.definition` (box.yaml), :mod:`.version` (content hash, version
scheme), :mod:`.apt_sources` (the host's mirror), :mod:`.preflight` (host checks), :mod:`.rootfs`
(mmdebstrap), :mod:`.configure` (the image's configuration), :mod:`.disk` (raw disk, qcow2),
:mod:`.grub` (boot loader), :mod:`.package` (.box, catalog, vagrant box add), :mod:`.installed` (boxes in
VAGRANT_HOME), :mod:`.old_versions` and :mod:`.pool_volumes` (removing older versions), :mod:`.buildlog`
and :mod:`.workdir` (log, lock, safe removal), and :mod:`.build`, which runs the phases in order.
"""

from __future__ import annotations

from labkit.hostsetup.box.apt_sources import (
    AptSource,
    mirror_lines,
    parse_deb822_sources,
    parse_one_line_sources,
)
from labkit.hostsetup.box.build import build_box, ensure_box
from labkit.hostsetup.box.definition import DEFAULT_BOX, load_definition
from labkit.hostsetup.box.disk import MiB
from labkit.hostsetup.box.grub import grub_missing_commands
from labkit.hostsetup.box.installed import BoxInfo, box_is_current, list_boxes
from labkit.hostsetup.box.pool_volumes import box_volume_name
from labkit.hostsetup.box.version import (
    BUILDER_VERSION,
    box_version,
    content_hash,
    version_hash_prefix,
    version_matches,
    version_sort_key,
)

__all__ = [
    "BUILDER_VERSION",
    "DEFAULT_BOX",
    "AptSource",
    "BoxInfo",
    "MiB",
    "box_is_current",
    "box_version",
    "box_volume_name",
    "build_box",
    "content_hash",
    "ensure_box",
    "grub_missing_commands",
    "list_boxes",
    "load_definition",
    "mirror_lines",
    "parse_deb822_sources",
    "parse_one_line_sources",
    "version_hash_prefix",
    "version_matches",
    "version_sort_key",
]
