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

**Mirror.** Classrooms behind a proxy point labkit at a mirror base URL (``fetch(..., mirror=URL)``,
``labkit artifacts fetch --mirror URL``, env ``LABKIT_MIRROR``, or a scenario's mirror, in that order).
The mirror replaces the scheme and host of the upstream URL and keeps the host as the first path
segment, so one mirror serves every upstream::

    https://dl.k8s.io/release/v1.19.7/bin/linux/amd64/kubelet
      -> <mirror>/dl.k8s.io/release/v1.19.7/bin/linux/amd64/kubelet
    https://github.com/etcd-io/etcd/releases/download/v3.4.14/etcd-v3.4.14-linux-amd64.tar.gz
      -> <mirror>/github.com/etcd-io/etcd/releases/download/v3.4.14/etcd-v3.4.14-linux-amd64.tar.gz

The mirror is ``http://``, ``https://`` or ``file://`` (a shared directory laid out the same way, e.g.
filled with ``wget -x``). urllib's
usual ``https_proxy`` / ``http_proxy`` / ``no_proxy`` variables apply as well.

**Offline.** :func:`import_dir` fills the cache from a directory of downloaded files, matched by file
name (files of several versions of one name go in directories named after the version), verified the
same way (checksum files lying next to them are ignored: they are no pin).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labkit import __version__, paths
from labkit.errors import HostError, UsageError
from labkit.model.image_refs import Image, same_image
from labkit.model.scenario import Versions

log = logging.getLogger("labkit.artifacts")

CATALOG_FILE = paths.PACKAGE_DIR / "artifacts" / "catalog.yaml"
MIRROR_ENV = "LABKIT_MIRROR"
CATALOG_ENV = "LABKIT_CATALOG"
LOCK_FILE_NAME = "artifacts.lock.json"
COMPONENTS = ("kubernetes", "etcd", "flannel", "cni_plugins", "flannel_cni_plugin")
MIRROR_SCHEMES = ("http", "https", "file")
TIMEOUT_SECONDS = 60.0
CHUNK = 1 << 20

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SHA512_RE = re.compile(r"^[0-9a-f]{128}$")
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+$")

Component = Literal["kubernetes", "etcd", "flannel", "cni_plugins", "flannel_cni_plugin"]
ProgressFn = Callable[[int, int | None], None]
"""Called with (bytes done, total bytes or None when the server does not say)."""
WarnFn = Callable[[str], None]


# ---- catalog ------------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _normalize_member(value: str) -> str:
    """``./bridge`` and ``bridge`` name the same tar member; refuse absolute paths and ``..``."""
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"{value!r} is not a relative path inside the archive")
    parts = [p for p in path.parts if p != "."]
    if not parts:
        raise ValueError(f"{value!r} names no file")
    return "/".join(parts)


class Install(_Model):
    """One file an artifact puts on a node: ``member`` of the archive (tar) or the download itself."""

    member: str | None = Field(default=None, description="path inside the archive; only for unpack: tar")
    path: str = Field(description="absolute path on the node")
    mode: int = Field(default=0o755, description='file mode on the node, written "0755" in YAML')

    @field_validator("member")
    @classmethod
    def _member(cls, value: str | None) -> str | None:
        return None if value is None else _normalize_member(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or ".." in path.parts or value.endswith("/"):
            raise ValueError(f"{value!r} is not an absolute file path")
        return str(path)

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> int:
        if isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{3,4}", value):
            mode = int(value.replace("o", ""), 8)
        elif isinstance(value, int) and not isinstance(value, bool):
            mode = value
        else:
            raise ValueError(f'mode {value!r}: write it as an octal string like "0755"')
        if not 0 <= mode <= 0o7777:
            raise ValueError(f"mode {oct(mode)} is out of range")
        return mode


class Artifact(_Model):
    """A pinned download. ``sha256`` is empty when the catalog has no pin (see the module doc)."""

    name: str
    component: Component
    version: str
    url: str
    sha256: str = ""
    sha512: str = ""
    trust: Literal["pinned", "first-use"] = "pinned"
    source: str = Field(min_length=1, description="where the pinned checksum comes from")
    unpack: Literal["none", "tar"] = "none"
    install: list[Install] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(f"{value!r} is not a valid artifact name (lowercase, digits, '.', '_', '-')")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> str:
        text = str(value)
        if not VERSION_RE.match(text):
            raise ValueError(f"{text!r} is not a version (MAJOR.MINOR.PATCH)")
        return text.removeprefix("v")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.strip("/"):
            raise ValueError(f"{value!r} is not an http(s) URL of a file")
        return value

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str) -> str:
        value = value.strip().lower()
        if value and not SHA256_RE.match(value):
            raise ValueError(f"{value!r} is not a sha256 (64 hex digits)")
        return value

    @field_validator("sha512")
    @classmethod
    def _sha512(cls, value: str) -> str:
        value = value.strip().lower()
        if value and not SHA512_RE.match(value):
            raise ValueError(f"{value!r} is not a sha512 (128 hex digits)")
        return value

    @model_validator(mode="after")
    def _pinned_or_first_use(self) -> Artifact:
        pinned = bool(self.sha256 or self.sha512)
        if self.trust == "pinned" and not pinned:
            raise ValueError(
                "has no pinned sha256 or sha512: pin one from a source you cite (a checksum fetched next to "
                "the download proves nothing), or, only where upstream publishes none, write trust: first-use"
            )
        if self.trust == "first-use" and pinned:
            raise ValueError(
                "trust: first-use is for files with no published checksum: drop it, the pin is kept"
            )
        return self

    @model_validator(mode="after")
    def _filename_stays_in_its_directory(self) -> Artifact:
        # the cache path is <name>/<version>/<filename>: a URL whose last part decodes to "../x" or "a/b" would
        # write elsewhere on the host
        name = self.filename
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
            raise ValueError(f"the URL's file name {name!r} is not a plain file name; refused")
        return self

    @model_validator(mode="after")
    def _install_matches_unpack(self) -> Artifact:
        if self.unpack == "none":
            if len(self.install) != 1 or self.install[0].member is not None:
                raise ValueError("unpack: none installs exactly one file and names no member")
        else:
            if any(item.member is None for item in self.install):
                raise ValueError("unpack: tar needs a member for every install entry")
            members = [item.member for item in self.install]
            if len(set(members)) != len(members):
                raise ValueError("the same member is installed twice")
        return self

    @property
    def key(self) -> str:
        """``name/version``: the artifact's id in the lock file and the cache."""
        return f"{self.name}/{self.version}"

    @property
    def filename(self) -> str:
        return urllib.parse.unquote(PurePosixPath(urllib.parse.urlsplit(self.url).path).name)

    @property
    def pinned(self) -> bool:
        return bool(self.sha256 or self.sha512)

    @property
    def members(self) -> list[str]:
        return [item.member for item in self.install if item.member is not None]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


class Catalog(_Model):
    artifacts: list[Artifact]
    images: list[Image] = Field(default_factory=list)
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        seen: set[str] = set()
        for artifact in self.artifacts:
            if artifact.key in seen:
                raise ValueError(f"{artifact.key} is listed twice")
            seen.add(artifact.key)
        names: set[str] = set()
        for image in self.images:
            if image.name in names or image.key in seen:
                raise ValueError(f"image {image.name} ({image.reference}) is listed twice")
            names.add(image.name)
            seen.add(image.key)
        return self

    def image(self, wanted: str) -> Image:
        """The catalog image named ``wanted`` (``pause``) or with that reference (``busybox:1.28``)."""
        for image in self.images:
            if image.name == wanted or same_image(image.reference, wanted):
                return image
        known = ", ".join(f"{i.name} ({i.reference})" for i in self.images) or "none"
        raise UsageError(
            f"the artifact catalog has no image {wanted!r}",
            f"images: {known}; add an entry under `images:` in {self.path or 'the catalog'}",
        )

    def images_for(self, references: dict[str, str], where: str = "images") -> list[Image]:
        """The catalog images for a scenario's ``images:`` (role -> reference), in role order, each once;
        UsageError naming every role whose reference the catalog lacks."""
        chosen: list[Image] = []
        unknown: list[str] = []
        for role, reference in references.items():
            found = [i for i in self.images if same_image(i.reference, reference)]
            if not found:
                unknown.append(f"{where}.{role}: {reference}")
            elif found[0] not in chosen:
                chosen.append(found[0])
        if unknown:
            known = ", ".join(i.reference for i in self.images) or "none"
            raise UsageError(
                f"no catalog image for {'; '.join(unknown)}",
                f"use an image the catalog knows ({known}), or add it under `images:` in "
                f"{self.path or 'the catalog'} with its digest and source",
            )
        return chosen

    def get(self, name: str, version: str | None = None) -> Artifact:
        """The artifact ``name`` (of ``version``, or the only one of that name)."""
        found = [a for a in self.artifacts if a.name == name]
        if version is not None:
            wanted = version.removeprefix("v")
            matching = [a for a in found if a.version == wanted]
            if not matching:
                known = ", ".join(a.version for a in found) or "none"
                raise UsageError(
                    f"the artifact catalog has no {name} {wanted}", f"versions of {name}: {known}"
                )
            return matching[0]
        if len(found) == 1:
            return found[0]
        if not found:
            raise UsageError(
                f"the artifact catalog has no artifact {name!r}",
                f"artifacts: {', '.join(sorted({a.name for a in self.artifacts}))}",
            )
        raise UsageError(
            f"the artifact catalog has several versions of {name}",
            f"name one of: {', '.join(a.version for a in found)}",
        )

    def versions(self, component: str) -> list[str]:
        """Known versions of a component, oldest first."""
        found = {a.version for a in self.artifacts if a.component == component}
        return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))

    def for_versions(self, versions: Versions) -> list[Artifact]:
        """Every artifact a scenario with these versions needs; UsageError naming each unknown version."""
        chosen: list[Artifact] = []
        unknown: list[str] = []
        for component in COMPONENTS:
            version = getattr(versions, component)
            if version is None:
                continue
            found = [a for a in self.artifacts if a.component == component and a.version == version]
            if not found:
                known = ", ".join(self.versions(component)) or "none"
                unknown.append(f"{component} {version} (known: {known})")
            chosen.extend(found)
        if unknown:
            where = self.path or "the catalog"
            raise UsageError(
                f"no artifacts for {'; '.join(unknown)}",
                f"use a version the catalog knows in the scenario's versions:, or add entries to {where}",
            )
        return chosen


CatalogLike = Catalog | Path | str | None


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Load and validate a catalog file (default: the one shipped with labkit)."""
    file = Path(path) if path is not None else CATALOG_FILE
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(
            f"cannot read the artifact catalog {file}: {exc.strerror}", "check the path"
        ) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"the artifact catalog {file} is not valid YAML: {exc}", "fix its syntax") from None
    if not isinstance(data, dict):
        raise UsageError(f"the artifact catalog {file} is not a mapping", "start it with `artifacts:`")
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise UsageError(f"the artifact catalog {file} is invalid: {problems}", "fix those entries") from None
    return catalog.model_copy(update={"path": file})


def _catalog(catalog: CatalogLike) -> Catalog:
    if isinstance(catalog, Catalog):
        return catalog
    return load_catalog(catalog)


def artifacts_for(versions: Versions, catalog: CatalogLike = None) -> list[Artifact]:
    """What a scenario's ``versions:`` need. An unknown version is a UsageError listing the known ones."""
    return _catalog(catalog).for_versions(versions)


# ---- mirror -------------------------------------------------------------------------------------------------


def check_mirror(mirror: str) -> str:
    """Validate a mirror base URL; returns it without trailing slashes."""
    parts = urllib.parse.urlsplit(mirror.strip())
    if parts.scheme not in MIRROR_SCHEMES:
        raise UsageError(
            f"mirror {mirror!r} is not an http://, https:// or file:// URL",
            "give a base URL like http://10.0.0.1:8080/labkit (it holds <host>/<path> of each upstream URL)",
        )
    if parts.scheme != "file" and not parts.netloc:
        raise UsageError(f"mirror {mirror!r} has no host", "give a base URL like http://10.0.0.1:8080")
    if parts.query or parts.fragment:
        raise UsageError(f"mirror {mirror!r} has a query or fragment", "give a plain base URL")
    return mirror.strip().rstrip("/")


def resolve_mirror(mirror: str | None = None, scenario_mirror: str | None = None) -> str | None:
    """The mirror to use: the argument, else ``$LABKIT_MIRROR``, else the scenario's; ``""`` forces none."""
    if mirror is not None:
        return check_mirror(mirror) if mirror.strip() else None
    env = os.environ.get(MIRROR_ENV, "").strip()
    if env:
        return check_mirror(env)
    if scenario_mirror:
        return check_mirror(scenario_mirror)
    return None


def mirror_url(url: str, mirror: str | None) -> str:
    """``https://dl.k8s.io/release/...`` -> ``<mirror>/dl.k8s.io/release/...`` (unchanged without mirror)."""
    if not mirror:
        return url
    base = check_mirror(mirror)
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    mapped = f"{base}/{host}{parts.path}"
    return f"{mapped}?{parts.query}" if parts.query else mapped


# ---- lock file (sha256 recorded on this host) ---------------------------------------------------------------

_thread_lock = threading.Lock()


def lock_file() -> Path:
    return paths.artifact_store() / LOCK_FILE_NAME


def _read_lock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": 1, "artifacts": {}}
    except (OSError, ValueError) as exc:
        raise HostError(
            f"cannot read the artifact lock file {path}: {exc}",
            "fix or delete it (deleting forgets the sha256 recorded at first download)",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), dict):
        raise HostError(f"the artifact lock file {path} is malformed", "fix or delete it")
    return data


@contextlib.contextmanager
def _lock_file_locked() -> Iterator[dict[str, Any]]:
    """Read-modify-write the lock file under an flock (several labkit processes may fetch at once)."""
    path = lock_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock, open(path.with_name(path.name + ".lock"), "a+") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            data = _read_lock(path)
            yield data
            _write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)


def lock_data() -> dict[str, Any]:
    """The whole lock file (``artifacts`` and ``images`` sections), read-only."""
    return _read_lock(lock_file())


editing_lock = _lock_file_locked
"""Context manager: read-modify-write the lock file under its flock (for :mod:`labkit.artifacts.images`)."""


def recorded(artifact: Artifact) -> dict[str, Any] | None:
    """The lock file's entry for an artifact (sha256, url, how, recorded), if any."""
    entry = _read_lock(lock_file())["artifacts"].get(artifact.key)
    return entry if isinstance(entry, dict) else None


def _record(artifact: Artifact, sha256: str, how: str) -> None:
    with _lock_file_locked() as data:
        entry = data["artifacts"].get(artifact.key)
        if isinstance(entry, dict) and entry.get("sha256") not in (None, sha256):
            raise _mismatch(artifact, str(entry["sha256"]), sha256, how, recorded_entry=True)
        data["artifacts"][artifact.key] = {
            "filename": artifact.filename,
            "sha256": sha256,
            "url": artifact.url,
            "how": how,
            "recorded": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def expected_sha256(artifact: Artifact) -> str | None:
    """The pin, else the value recorded in the lock file, else None (not known yet)."""
    if artifact.sha256:
        return artifact.sha256
    entry = recorded(artifact)
    return str(entry["sha256"]) if entry and entry.get("sha256") else None


def sha256_source(artifact: Artifact) -> str:
    """Where the expected sha256 comes from, for `labkit artifacts list`."""
    if artifact.sha256:
        return f"pinned: {artifact.source}"
    if artifact.sha512:
        return f"pinned sha512: {artifact.source}"
    entry = recorded(artifact)
    if entry:
        return f"recorded {entry.get('recorded', '?')} ({entry.get('how', '?')})"
    return "none published: recorded at first download (trust on first use)"


def _mismatch(
    artifact: Artifact, expected: str, got: str, where: str, *, recorded_entry: bool = False
) -> HostError:
    if recorded_entry or (not artifact.pinned and expected_sha256(artifact) == expected):
        hint = (
            f"{expected} was recorded on this host in {lock_file()} for {artifact.key}; if upstream really "
            "replaced the file, delete that entry and fetch again"
        )
    else:
        hint = (
            "the file is corrupt, truncated or not the pinned release (check the mirror's copy); "
            "fetch again or import a good copy"
        )
    return HostError(
        f"{artifact}: sha256 mismatch for {where}: expected {expected}, got {got}; refused", hint
    )


# ---- cache --------------------------------------------------------------------------------------------------


def cache_dir(artifact: Artifact) -> Path:
    return paths.artifact_cache_dir() / artifact.name / artifact.version


def cache_path(artifact: Artifact) -> Path:
    """Where the download lives once fetched (whether or not it is there)."""
    return cache_dir(artifact) / artifact.filename


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256.json")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a cached file, remembered next to it (keyed on size and mtime) so it is hashed once."""
    stat = path.stat()
    stamp = _stamp_path(path)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads(stamp.read_text())
        if data["size"] == stat.st_size and data["mtime_ns"] == stat.st_mtime_ns:
            return str(data["sha256"])
    value = _hash_file(path)
    _stamp(path, value)
    return value


def _stamp(path: Path, sha256: str) -> None:
    stat = path.stat()
    with contextlib.suppress(OSError):
        _write_atomic(
            _stamp_path(path),
            json.dumps({"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}).encode(),
        )


def _remove(path: Path) -> None:
    for p in (path, _stamp_path(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def cached_path(artifact: Artifact) -> Path | None:
    """The cached download when it is there and has the expected sha256; None otherwise."""
    path = cache_path(artifact)
    expected = expected_sha256(artifact)
    if expected is None or not path.is_file():
        return None
    return path if file_sha256(path) == expected else None


# ---- download -----------------------------------------------------------------------------------------------


def _provide_hint(artifact: Artifact, mirror: str | None, requested: str | None = None) -> str:
    where = (
        f"the mirror must serve {requested or mirror_url(artifact.url, mirror)}; "
        if mirror
        else "check the network or proxy (https_proxy), or set --mirror / LABKIT_MIRROR; "
    )
    return f"{where}or download {artifact.url} elsewhere and run `labkit artifacts import DIR`"


def _open(url: str, artifact: Artifact, mirror: str | None) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": f"labkit/{__version__}"})
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise HostError(
            f"cannot download {artifact}: HTTP {exc.code} {exc.reason} from {url}",
            _provide_hint(artifact, mirror, url),
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HostError(
            f"cannot download {artifact} from {url}: {reason}", _provide_hint(artifact, mirror, url)
        ) from None


def _download(
    artifact: Artifact,
    url: str,
    dest: Path,
    expected: str | None,
    mirror: str | None,
    progress: ProgressFn | None,
) -> str:
    """Stream ``url`` into a temporary file next to ``dest``, verify (the expected sha256, and the pinned sha512
    if any), then rename; returns the sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        digest512 = hashlib.sha512()
        with os.fdopen(fd, "wb") as out, _open(url, artifact, mirror) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            if progress:
                progress(0, total)
            while True:
                try:
                    chunk = response.read(CHUNK)
                except OSError as exc:
                    raise HostError(
                        f"download of {artifact} from {url} broke off: {exc}", _provide_hint(artifact, mirror)
                    ) from None
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                digest512.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if total is not None and done != total:
            raise HostError(
                f"download of {artifact} from {url} is truncated: {done} of {total} bytes",
                _provide_hint(artifact, mirror),
            )
        got = digest.hexdigest()
        if expected is not None and got != expected:
            raise _mismatch(artifact, expected, got, url)
        if artifact.sha512 and digest512.hexdigest() != artifact.sha512:
            raise _mismatch512(artifact, digest512.hexdigest(), url)
        tmp.chmod(0o644)
        os.replace(tmp, dest)
        _stamp(dest, got)
        return got
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _mismatch512(artifact: Artifact, got: str, where: str) -> HostError:
    return HostError(
        f"{artifact}: sha512 mismatch for {where}: expected {artifact.sha512}, got {got}; refused",
        "the file is corrupt, truncated or not the pinned release (check the mirror's copy); "
        "fetch again or import a good copy",
    )


def file_sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verified_by_sha512(artifact: Artifact, path: Path, sha256: str, what: str) -> None:
    """Check ``path`` against the pinned sha512 and record its sha256 for every later use."""
    got = file_sha512(path)
    if got != artifact.sha512:
        raise _mismatch512(artifact, got, str(path))
    _record(artifact, sha256, f"{what}, verified against the pinned sha512 ({artifact.source})")


def _first_use_warning(artifact: Artifact, sha256: str, how: str) -> str:
    return (
        f"{artifact}: no checksum is published; recorded sha256 {sha256} ({how}) in {lock_file()}. "
        "Compare it with a trusted copy; a later download or import that differs is refused."
    )


def fetch(
    artifact: Artifact,
    mirror: str | None = None,
    progress: ProgressFn | None = None,
    *,
    warn: WarnFn | None = None,
) -> Path:
    """Make ``artifact`` present in the host cache, verified; returns its path.

    A cached file with the expected sha256 is not downloaded again. ``mirror``: a base URL (see the module
    doc); None means ``$LABKIT_MIRROR`` if set, ``""`` means the upstream URL. A sha256 mismatch deletes the
    download and raises HostError with expected vs got and the URL. ``warn`` receives the warning given
    when a sha256 is recorded at first download (default: the ``labkit.artifacts`` logger).
    """
    warn = warn or log.warning
    base = resolve_mirror(mirror)
    dest = cache_path(artifact)
    expected = expected_sha256(artifact)
    if dest.is_file():
        got = file_sha256(dest)
        if expected is None and artifact.sha512:
            try:
                _verified_by_sha512(artifact, dest, got, f"cached {dest}")
                return dest
            except HostError:
                log.warning("%s: cached %s does not match its sha512; downloading again", artifact, dest)
        elif expected is None:
            # trust on first use means the first *download*: a file that appeared in the cache is no record
            log.warning("%s: cached %s was never recorded; downloading it again to record it", artifact, dest)
        elif got == expected:
            return dest
        else:
            log.warning("%s: cached %s does not match its sha256; downloading again", artifact, dest)
        _remove(dest)
    url = mirror_url(artifact.url, base)
    got = _download(artifact, url, dest, expected, base, progress)
    if expected is None:
        how = (
            f"download from {url}, verified against the pinned sha512 ({artifact.source})"
            if artifact.sha512
            else f"first download from {url}"
        )
        try:
            _record(artifact, got, how)
        except HostError:
            _remove(dest)  # another process recorded a different file meanwhile
            raise
        if not artifact.sha512:
            warn(_first_use_warning(artifact, got, how))
    return dest


def fetch_all(
    artifacts: list[Artifact], mirror: str | None = None, *, warn: WarnFn | None = None
) -> list[Path]:
    """Fetch several artifacts in order; stops at the first error."""
    return [fetch(a, mirror, warn=warn) for a in artifacts]


# ---- offline import -----------------------------------------------------------------------------------------

ImportStatus = Literal["imported", "cached", "refused", "ignored"]


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_dir` did with one file."""

    file: Path
    status: ImportStatus
    artifact: str | None  # "name version"
    sha256: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "status": self.status,
            "artifact": self.artifact,
            "sha256": self.sha256,
            "message": self.message,
        }


def _is_checksum_file(path: Path) -> bool:
    name = path.name
    return name.endswith((".sha256", ".sha256sum")) or name.upper().startswith(("SHA256SUMS", "SHA256SUM"))


def _copy_into_cache(src: Path, artifact: Artifact, sha256: str) -> None:
    dest = cache_path(artifact)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, src.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise _mismatch(artifact, sha256, digest.hexdigest(), f"{src} (changed while importing)")
        tmp.chmod(0o644)
        os.replace(tmp, dest)
        _stamp(dest, sha256)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _names_version(text: str, version: str) -> bool:
    """``v1.19.7``, ``kubernetes-1.19.7`` name 1.19.7; ``1.19.70`` and ``11.19.7`` do not."""
    return re.search(rf"(?<![\d.]){re.escape(version)}(?![\d.])", text) is not None


def active_catalog() -> Catalog:
    """The catalog in use: ``$LABKIT_CATALOG`` when set (tests, a classroom's own), else the shipped one."""
    return load_catalog(os.environ.get(CATALOG_ENV) or None)


def _import_one(
    path: Path, rel: Path, candidates: list[Artifact], published: str | None, warn: WarnFn
) -> ImportResult:
    in_version_dir = [
        a for a in candidates if any(_names_version(part, a.version) for part in rel.parent.parts)
    ]
    if in_version_dir:
        candidates = in_version_dir
    got = _hash_file(path)
    expectations = {a.key: expected_sha256(a) for a in candidates}
    matching = [a for a in candidates if expectations[a.key] == got]
    if matching:
        artifact = matching[0]
        if cached_path(artifact) is not None:
            return ImportResult(path, "cached", str(artifact), got, "already in the cache")
        _copy_into_cache(path, artifact, got)
        return ImportResult(path, "imported", str(artifact), got, f"verified ({sha256_source(artifact)})")
    unknown = [a for a in candidates if expectations[a.key] is None]
    if len(unknown) > 1:
        names = ", ".join(str(a) for a in unknown)
        return ImportResult(
            path,
            "refused",
            None,
            got,
            f"matches several versions ({names}): put it in a directory named after its version",
        )
    if len(unknown) == 1:
        artifact = unknown[0]
        if artifact.sha512:
            try:
                _verified_by_sha512(artifact, path, got, f"import of {path}")
            except HostError as refused:
                return ImportResult(path, "refused", str(artifact), got, str(refused))
            _copy_into_cache(path, artifact, got)
            return ImportResult(path, "imported", str(artifact), got, "verified against the pinned sha512")
        if published is not None:
            # a first-use artifact whose value another host recorded: the export's lock entry
            if published != got:
                error = _mismatch(artifact, published, got, f"{path} (the export's lock)")
                return ImportResult(path, "refused", str(artifact), got, str(error))
            _copy_into_cache(path, artifact, got)
            how = f"import of {path}, as recorded in the export's lock"
            _record(artifact, got, how)
            warn(_first_use_warning(artifact, got, how))
            return ImportResult(path, "imported", str(artifact), got, "as recorded in the export's lock")
        _copy_into_cache(path, artifact, got)
        how = f"first import of {path}"
        _record(artifact, got, how)
        warn(_first_use_warning(artifact, got, how))
        return ImportResult(path, "imported", str(artifact), got, "recorded at first import (none published)")
    artifact = candidates[0]
    expected = expectations[artifact.key]
    assert expected is not None
    error = _mismatch(artifact, expected, got, str(path))
    return ImportResult(path, "refused", str(artifact), got, f"{error.message} ({error.hint})")


def _exported_checksums(root: Path, files: list[Path], exported: dict[str, Any]) -> dict[Path, str]:
    """sha256 values an export's lock file gives the files laid out as ``<name>/<version>/<filename>``."""
    found: dict[Path, str] = {}
    for path in files:
        rel = path.relative_to(root).parts
        if len(rel) < 3:
            continue
        entry = exported.get(f"{rel[-3]}/{rel[-2]}")
        if isinstance(entry, dict) and entry.get("filename") == path.name and entry.get("sha256"):
            found[path] = str(entry["sha256"]).lower()
    return found


def import_dir(
    directory: Path | str,
    catalog: CatalogLike = None,
    *,
    warn: WarnFn | None = None,
    exported: dict[str, Any] | None = None,
    skip: Collection[Path] = (),
) -> list[ImportResult]:
    """Fill the cache from a directory of downloaded files (searched recursively), verifying each one.

    Files are matched to catalog entries by file name. A file whose sha256 differs from the expected one
    is refused (status ``refused``, nothing cached); files the catalog does not know are ``ignored``.
    Checksum files (``NAME.sha256``, ``SHA256SUMS``) are ignored: they are no pin. ``exported`` (the
    ``artifacts`` section of the lock file ``labkit artifacts export`` writes) gives first-use artifacts the value
    the exporting host recorded. Files in ``skip`` (container
    images, imported by :mod:`labkit.artifacts.offline`) and the export's lock file are left out.
    """
    warn = warn or log.warning
    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", "give the directory holding the downloaded files")
    cat = _catalog(catalog)
    skipped = {Path(p) for p in skip}
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p not in skipped and p != root / LOCK_FILE_NAME
    )
    checksums = _exported_checksums(root, files, exported or {})
    by_name: dict[str, list[Artifact]] = {}
    for artifact in cat.artifacts:
        by_name.setdefault(artifact.filename, []).append(artifact)
    results: list[ImportResult] = []
    for path in files:
        if _is_checksum_file(path):
            results.append(ImportResult(path, "ignored", None, None, "a checksum file is no pin: not used"))
            continue
        candidates = by_name.get(path.name)
        if not candidates:
            results.append(ImportResult(path, "ignored", None, None, "not in the artifact catalog"))
            continue
        try:
            results.append(_import_one(path, path.relative_to(root), candidates, checksums.get(path), warn))
        except HostError as exc:
            results.append(ImportResult(path, "refused", None, None, str(exc)))
        except OSError as exc:
            results.append(ImportResult(path, "refused", None, None, f"cannot read or copy it: {exc}"))
    return results


# ---- what is missing ----------------------------------------------------------------------------------------


def missing_artifacts(versions: Versions, catalog: CatalogLike = None) -> list[Artifact]:
    """The artifacts these versions need that are not in the host cache (verified)."""
    return [a for a in artifacts_for(versions, catalog) if cached_path(a) is None]


def describe_missing(
    artifacts: list[Artifact], scenario: str | None = None, images: list[Image] | None = None
) -> tuple[str, str]:
    """(message, hint) naming each missing artifact and image and how to provide them."""
    parts = []
    if artifacts:
        names = ", ".join(f"{a} ({a.url})" for a in artifacts)
        parts.append(f"missing artifact{'s' if len(artifacts) != 1 else ''}: {names}")
    if images:
        names = ", ".join(f"{i.reference}@{i.digest or 'digest recorded at first pull'}" for i in images)
        parts.append(f"missing image{'s' if len(images) != 1 else ''}: {names}")
    target = f" {scenario}" if scenario else ""
    hint = (
        f"run `labkit artifacts fetch{target}` (behind a proxy add --mirror URL or set {MIRROR_ENV}), "
        f"or on a host that has them `labkit artifacts export{target or ' SCENARIO'} DIR` and here "
        "`labkit artifacts import DIR`"
    )
    return "; ".join(parts) or "nothing missing", hint


class MissingArtifactsError(HostError):
    """Raised before touching any VM when a stage needs an artifact or image the host cache lacks."""

    def __init__(
        self, artifacts: list[Artifact], scenario: str | None = None, images: list[Image] | None = None
    ) -> None:
        self.artifacts = artifacts
        self.images = list(images or [])
        message, hint = describe_missing(artifacts, scenario, self.images)
        super().__init__(message, hint)


def require_artifacts(
    versions: Versions, catalog: CatalogLike = None, scenario: str | None = None
) -> list[Artifact]:
    """All artifacts these versions need, or MissingArtifactsError naming the absent ones."""
    needed = artifacts_for(versions, catalog)
    missing = [a for a in needed if cached_path(a) is None]
    if missing:
        raise MissingArtifactsError(missing, scenario)
    return needed


# ---- members (what install steps upload) --------------------------------------------------------------------


def _require_cached(artifact: Artifact) -> Path:
    path = cached_path(artifact)
    if path is None:
        on_disk, expected = cache_path(artifact), expected_sha256(artifact)
        if expected is not None and on_disk.is_file():
            raise HostError(
                f"{artifact}: the cached {on_disk} has sha256 {file_sha256(on_disk)}, expected {expected}: "
                "refused (corrupted or replaced)",
                "delete it and `labkit artifacts fetch` again, or `labkit artifacts import DIR` a good copy",
            )
        raise MissingArtifactsError([artifact])
    return path


def _find_member(archive: tarfile.TarFile, member: str) -> tarfile.TarInfo:
    for info in archive.getmembers():
        try:
            name = _normalize_member(info.name)
        except ValueError:
            continue
        if name == member:
            return info
    sample = ", ".join(sorted(_normalize_member(i.name) for i in archive.getmembers() if i.isfile())[:12])
    raise HostError(f"the archive has no member {member!r}", f"its files include: {sample}")


def extract(artifact: Artifact, member: str | None = None) -> Path:
    """A local file holding ``member`` of the cached artifact (the download itself for unpack: none).

    Tar members are extracted once to ``<cache>/<name>/<version>/members/<member>`` (atomically); their
    sha256 is available from :func:`member_sha256`.
    """
    source = _require_cached(artifact)
    if artifact.unpack == "none":
        if member not in (None, artifact.filename):
            raise UsageError(f"{artifact} is a single file; it has no member {member!r}")
        return source
    if member is None:
        raise UsageError(
            f"{artifact} is an archive: name a member", f"members: {', '.join(artifact.members)}"
        )
    name = _normalize_member(member)
    out = cache_dir(artifact) / "members" / name
    archive_sha = file_sha256(source)
    marker = out.with_name(f".{out.name}.from")
    with contextlib.suppress(OSError):
        if out.is_file() and marker.read_text().strip() == archive_sha:
            return out
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(source, "r:*") as archive:
            info = _find_member(archive, name)
            handle: IO[bytes] | None = archive.extractfile(info)
            if handle is None:
                raise HostError(f"{artifact}: member {name!r} is not a file", "check the catalog's member")
            fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as target, handle:
                    shutil.copyfileobj(handle, target, CHUNK)
                tmp.chmod(0o755 if info.mode & 0o111 else 0o644)
                os.replace(tmp, out)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise HostError(
            f"{artifact}: cannot read {name!r} from {source}: {exc}",
            f"delete {source} and fetch or import it again",
        ) from None
    _write_atomic(marker, archive_sha.encode())
    return out


def member_sha256(artifact: Artifact, member: str | None = None) -> str:
    """sha256 of an extracted member (or of the download for unpack: none)."""
    return file_sha256(extract(artifact, member))


def member_bytes(artifact: Artifact, member: str | None = None) -> bytes:
    return extract(artifact, member).read_bytes()


@dataclass(frozen=True)
class InstallSource:
    """One file ready for an install step: upload ``local`` to ``path`` with ``mode``; skip if sha256 matches."""

    artifact: str
    member: str | None
    local: Path
    path: str
    mode: int
    sha256: str


def install_sources(artifact: Artifact) -> list[InstallSource]:
    """Every file the artifact installs, extracted and hashed (MissingArtifactsError if not cached)."""
    sources = []
    for item in artifact.install:
        local = extract(artifact, item.member)
        sources.append(
            InstallSource(str(artifact), item.member, local, item.path, item.mode, file_sha256(local))
        )
    return sources


# ---- status (for `labkit artifacts list`) -------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactStatus:
    artifact: Artifact
    cached: Path | None
    sha256: str | None
    source: str

    def to_json(self) -> dict[str, Any]:
        a = self.artifact
        return {
            "name": a.name,
            "version": a.version,
            "component": a.component,
            "url": a.url,
            "filename": a.filename,
            "cached": self.cached is not None,
            "path": str(self.cached) if self.cached else None,
            "sha256": self.sha256,
            "sha256_source": self.source,
            "install": [{"member": i.member, "path": i.path, "mode": f"{i.mode:04o}"} for i in a.install],
        }


def status(artifacts: list[Artifact]) -> list[ArtifactStatus]:
    return [ArtifactStatus(a, cached_path(a), expected_sha256(a), sha256_source(a)) for a in artifacts]


__all__ = [
    "CATALOG_FILE",
    "MIRROR_ENV",
    "Artifact",
    "ArtifactStatus",
    "Catalog",
    "ImportResult",
    "Install",
    "InstallSource",
    "MissingArtifactsError",
    "artifacts_for",
    "cache_path",
    "cached_path",
    "describe_missing",
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
    "require_artifacts",
    "resolve_mirror",
    "sha256_source",
    "status",
]
