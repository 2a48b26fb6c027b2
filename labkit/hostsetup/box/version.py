"""What a built box is identified by: the content hash of its definition directory, and the Vagrant
version that carries it (pure)."""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import os
import re
from pathlib import Path

# Bump when the builder changes what it makes from the same definition: every box is rebuilt once.
BUILDER_VERSION = 1

# Files in a definition directory that never count (editor and Python leftovers).
HASH_IGNORED = ("__pycache__", "*.pyc", "*.swp", "*~", ".#*", ".DS_Store")


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in HASH_IGNORED)


def definition_files(directory: Path) -> list[Path]:
    """Every file of a definition that counts in its hash, relative, sorted (symlinks are not followed)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d))
        base = Path(dirpath)
        for filename in filenames:
            if not _ignored(filename):
                found.append((base / filename).relative_to(directory))
        for dirname in dirnames:  # symlinks to directories are entries, not trees
            if (base / dirname).is_symlink():
                found.append((base / dirname).relative_to(directory))
    return sorted(found, key=lambda p: p.as_posix())


def content_hash(directory: Path, builder_version: int = BUILDER_VERSION) -> str:
    """sha256 (hex) of a definition directory: relative paths, file kinds, executable bits and contents,
    plus ``builder_version``. Timestamps, owners and empty directories do not count."""
    digest = hashlib.sha256(f"labkit-box-builder {builder_version}\n".encode())
    for rel in definition_files(directory):
        path = directory / rel
        if path.is_symlink():
            kind, data = b"link", os.readlink(path).encode()
        else:
            kind = b"exec" if path.stat().st_mode & 0o111 else b"file"
            data = path.read_bytes()
        name = rel.as_posix().encode()
        digest.update(b"%s\0%s\0%d\0" % (name, kind, len(data)))
        digest.update(data)
    return digest.hexdigest()


# Vagrant versions must look like `1.2.3` (integers joined by dots; Vagrant compares them as RubyGems
# versions), so a hex digest cannot be used as it is. labkit's box versions are
#     <BUILDER_VERSION>.<UTC build time as YYYYMMDDhhmmss>.<first 12 hex digits of the content hash, in decimal>
# e.g. 1.20250520093000.173246852791503: always newer than the previous build (Vagrant picks the newest
# version when a Vagrantfile names none), unique per build (vagrant-libvirt names the uploaded pool volume
# after the version, so a forced rebuild never reuses a stale volume), and the last number tells which
# definition a box was built from without reading its labkit.json.
HASH_DIGITS = 12


def box_version(digest: str, built_at: dt.datetime, builder_version: int = BUILDER_VERSION) -> str:
    stamp = built_at.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")
    return f"{builder_version}.{stamp}.{int(digest[:HASH_DIGITS], 16)}"


def version_hash_prefix(version: str) -> str | None:
    """The hex hash prefix a labkit box version carries, or None for a version labkit did not make."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    value = int(parts[2])
    if value >= 16**HASH_DIGITS:
        return None
    return f"{value:0{HASH_DIGITS}x}"


def version_matches(version: str, digest: str) -> bool:
    return version_hash_prefix(version) == digest[:HASH_DIGITS]


def version_sort_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.]", version))


__all__ = [
    "BUILDER_VERSION",
    "HASH_DIGITS",
    "HASH_IGNORED",
    "box_version",
    "content_hash",
    "definition_files",
    "version_hash_prefix",
    "version_matches",
    "version_sort_key",
]
