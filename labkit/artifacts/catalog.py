"""The artifact catalog (``labkit/artifacts/catalog.yaml``): each pinned download with its upstream URL, its
checksum and where that checksum comes from, how to unpack it and what lands where on a node; and the container
images. Loading validates every entry; lookups go by name, version or a scenario's ``versions:``.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labkit import paths
from labkit.errors import UsageError
from labkit.model.image_refs import Image, same_image
from labkit.model.scenario import Versions

CATALOG_FILE = paths.PACKAGE_DIR / "artifacts" / "catalog.yaml"
CATALOG_ENV = "LABKIT_CATALOG"
COMPONENTS = ("kubernetes", "etcd", "flannel", "cni_plugins", "flannel_cni_plugin")

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SHA512_RE = re.compile(r"^[0-9a-f]{128}$")
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+$")

Component = Literal["kubernetes", "etcd", "flannel", "cni_plugins", "flannel_cni_plugin"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def normalize_member(value: str) -> str:
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
        return None if value is None else normalize_member(value)

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
    """A pinned download. ``sha256`` is empty when the catalog has no pin (see :mod:`labkit.artifacts`)."""

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


def as_catalog(catalog: CatalogLike) -> Catalog:
    """The catalog given, else the one loaded from the file named (default: the shipped one)."""
    if isinstance(catalog, Catalog):
        return catalog
    return load_catalog(catalog)


def active_catalog() -> Catalog:
    """The catalog in use: ``$LABKIT_CATALOG`` when set (tests, a classroom's own), else the shipped one."""
    return load_catalog(os.environ.get(CATALOG_ENV) or None)


def artifacts_for(versions: Versions, catalog: CatalogLike = None) -> list[Artifact]:
    """What a scenario's ``versions:`` need. An unknown version is a UsageError listing the known ones."""
    return as_catalog(catalog).for_versions(versions)
