"""Artifacts: the pinned downloads a scenario installs on its nodes (Kubernetes, etcd, flannel, CNI plugins).

The catalog (``labkit/artifacts/catalog.yaml``) lists each download with its upstream URL, its sha256 and
where that sha256 comes from, how to unpack it and what lands where on a node. A download is cached once
per host under ``artifact_cache_dir()/<name>/<version>/<filename>`` and is only ever used when its sha256
is the expected one:

- **pinned**: the catalog's ``sha256``, or its ``sha512`` where that is what upstream published (the Kubernetes
  server tarball's, in the release changelog), taken from a source the catalog cites. A sha512-pinned file is
  verified against it once, and its sha256 recorded in the lock file for every later use;
- **first use** (``trust: first-use``, flanneld only: nothing is published): labkit records the sha256 of the
  first download in the lock file (``artifact_store()/artifacts.lock.json``), warns, and refuses any later file
  that differs. A cached file the lock does not know is never trusted: it is downloaded again.

A checksum fetched next to a download, through the same (maybe plain http) mirror, proves nothing: labkit never
trusts one. An entry with neither a pin nor ``trust: first-use`` is refused when the catalog is loaded.

The modules, one job each:

- :mod:`~labkit.artifacts.catalog`: the catalog, its entries and lookups by name or versions;
- :mod:`~labkit.artifacts.mirror`: the mirror base URL classrooms behind a proxy download through;
- :mod:`~labkit.artifacts.download`: downloading, verified on the way in;
- :mod:`~labkit.artifacts.store`: where a download lives in the cache and the sha256 it must have;
- :mod:`~labkit.artifacts.lockfile`: the lock file, what this host recorded (artifacts and images alike);
- :mod:`~labkit.artifacts.files`: atomic writes and remembered hashes of cached files;
- :mod:`~labkit.artifacts.unpack`: the files install steps upload, unpacked from tarballs;
- :mod:`~labkit.artifacts.inventory`: what the cache holds and lacks, and the error naming what is missing;
- :mod:`~labkit.artifacts.images`: container images, pulled by digest with skopeo;
- :mod:`~labkit.artifacts.importing` and :mod:`~labkit.artifacts.offline`: carrying the cache to an offline
  host (export, then import verified).
"""

from __future__ import annotations

from labkit.artifacts.catalog import (
    CATALOG_FILE,
    Artifact,
    Catalog,
    Install,
    active_catalog,
    artifacts_for,
    load_catalog,
)
from labkit.artifacts.download import fetch
from labkit.artifacts.files import file_sha256
from labkit.artifacts.importing import ImportResult, import_dir
from labkit.artifacts.inventory import (
    ArtifactStatus,
    MissingArtifactsError,
    describe_missing,
    missing_artifacts,
    require_artifacts,
    status,
)
from labkit.artifacts.lockfile import LOCK_FILE_NAME, editing_lock, lock_file
from labkit.artifacts.mirror import MIRROR_ENV, mirror_url, resolve_mirror
from labkit.artifacts.store import cache_path, cached_path, expected_sha256, recorded, sha256_source
from labkit.artifacts.unpack import InstallSource, extract, install_sources, member_bytes, member_sha256

__all__ = [
    "CATALOG_FILE",
    "LOCK_FILE_NAME",
    "MIRROR_ENV",
    "Artifact",
    "ArtifactStatus",
    "Catalog",
    "ImportResult",
    "Install",
    "InstallSource",
    "MissingArtifactsError",
    "active_catalog",
    "artifacts_for",
    "cache_path",
    "cached_path",
    "describe_missing",
    "editing_lock",
    "expected_sha256",
    "extract",
    "fetch",
    "file_sha256",
    "import_dir",
    "install_sources",
    "load_catalog",
    "lock_file",
    "member_bytes",
    "member_sha256",
    "mirror_url",
    "missing_artifacts",
    "recorded",
    "require_artifacts",
    "resolve_mirror",
    "sha256_source",
    "status",
]
