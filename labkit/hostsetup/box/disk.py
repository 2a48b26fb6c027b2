"""The box's disk image, made without loop mounts: a sparse raw file, one partition at a 1 MiB offset
(``sfdisk``), the root file system written into it from a directory (``mke2fs -d``), then qcow2."""

from __future__ import annotations

from pathlib import Path

from labkit.hostsetup.box.buildlog import BuildLog
from labkit.hostsetup.box.definition import BoxDefinition

MiB = 1024 * 1024
GiB = 1024 * MiB
PARTITION_OFFSET = MiB
FS_BLOCK_SIZE = 4096
# zstd-compressed qcow2 clusters: measured 6.7 s vs 31.5 s for zlib on this box, 3 % smaller, faster to
# read. Needs QEMU >= 5.1 wherever the box is used (Debian 12 has 7.2).
QCOW2_COMPRESSION = "zstd"


def make_raw_disk(
    log: BuildLog, definition: BoxDefinition, rootfs: Path, work: Path, fs_uuid: str, disk_id: str
) -> Path:
    raw = work / "disk.raw"
    size = definition.disk_size_gib * GiB
    with raw.open("wb") as handle:  # sparse: only written blocks take space
        handle.truncate(size)
    log.run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "always", str(raw)],
        what="partition the disk",
        input_text=f"label: dos\nlabel-id: 0x{disk_id}\nstart={PARTITION_OFFSET // 512}, type=83, bootable\n",
    )
    blocks = (size - PARTITION_OFFSET) // FS_BLOCK_SIZE
    log.run(
        [
            "mke2fs",
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            str(FS_BLOCK_SIZE),
            "-L",
            "root",
            "-U",
            fs_uuid,
            "-E",
            f"offset={PARTITION_OFFSET}",
            "-d",
            str(rootfs),
            str(raw),
            str(blocks),
        ],
        what="make the root file system (mke2fs -d)",
    )
    return raw


def convert_to_qcow2(log: BuildLog, raw: Path, image: Path) -> None:
    log.run(
        [
            "qemu-img",
            "convert",
            "-c",
            "-o",
            f"compression_type={QCOW2_COMPRESSION}",
            "-f",
            "raw",
            "-O",
            "qcow2",
            str(raw),
            str(image),
        ],
        what="convert to qcow2",
        timeout=1800,
    )


__all__ = [
    "FS_BLOCK_SIZE",
    "PARTITION_OFFSET",
    "QCOW2_COMPRESSION",
    "GiB",
    "MiB",
    "convert_to_qcow2",
    "make_raw_disk",
]
