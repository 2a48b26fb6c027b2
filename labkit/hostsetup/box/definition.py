"""A box definition: ``boxes/<name>/box.yaml`` (validated here) plus overlay files under ``files/``."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from labkit import paths
from labkit.errors import UsageError

DEFAULT_BOX = "debian12"
DEFINITION_FILE = "box.yaml"
OVERLAY_DIR = "files"


class UserSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    shell: str = "/bin/bash"


class BoxDefinition(BaseModel):
    """``boxes/<name>/box.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    description: str = ""
    suite: str = Field(pattern=r"^[a-z]+$")
    architecture: str = "amd64"
    variant: str = "minbase"
    components: list[str] = Field(default_factory=lambda: ["main"], min_length=1)
    mmdebstrap_hooks: list[str] = Field(default_factory=list)
    disk_size_gib: int = Field(default=8, ge=2, le=1024)
    hostname: str = Field(default="labkit-box", pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    packages: list[str] = Field(min_length=1)
    path_exclude: list[str] = Field(default_factory=list)
    path_include: list[str] = Field(default_factory=list)
    enable_units: list[str] = Field(default_factory=list)
    disable_units: list[str] = Field(default_factory=list)
    mask_units: list[str] = Field(default_factory=list)
    kernel_cmdline: str = "net.ifnames=0 console=ttyS0"
    grub_modules: list[str] = Field(min_length=1)
    user: UserSpec

    @field_validator(
        "packages",
        "components",
        "mmdebstrap_hooks",
        "enable_units",
        "disable_units",
        "mask_units",
        "grub_modules",
    )
    @classmethod
    def _plain_words(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9@_.+:-]*", item):
                raise ValueError(f"{item!r} is not a plain package/unit/module name")
        return value

    @field_validator("path_exclude", "path_include")
    @classmethod
    def _absolute_globs(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.startswith("/") or any(c.isspace() for c in item):
                raise ValueError(f"{item!r} must be an absolute path glob without spaces")
        return value

    @property
    def vagrant_dir_name(self) -> str:
        """The box's directory name under ``$VAGRANT_HOME/boxes``."""
        return self.name.replace("/", "-VAGRANTSLASH-")


def definition_dir(name: str = DEFAULT_BOX) -> Path:
    """Directory of a box definition; ``name`` is ``debian12`` or the box name ``labkit/debian12``."""
    root = paths.boxes_dir()
    candidates = [name]
    if "/" in name:
        candidates.append(name.rsplit("/", 1)[1])
    for candidate in candidates:
        if "/" in candidate or candidate.startswith("."):
            continue
        directory = root / candidate
        if (directory / DEFINITION_FILE).is_file():
            return directory
    known = sorted(p.parent.name for p in root.glob(f"*/{DEFINITION_FILE}")) if root.is_dir() else []
    raise UsageError(
        f"unknown box {name!r}: no {root}/{name}/{DEFINITION_FILE}",
        f"known boxes: {', '.join(known)}" if known else f"no box definitions under {root}",
    )


def load_definition(directory: Path) -> BoxDefinition:
    path = directory / DEFINITION_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: cannot read the box definition: {exc}") from exc
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected a mapping at the top level")
    try:
        return BoxDefinition.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise UsageError(f"{path}: {problems}", "fix the box definition") from exc


__all__ = [
    "DEFAULT_BOX",
    "DEFINITION_FILE",
    "OVERLAY_DIR",
    "BoxDefinition",
    "UserSpec",
    "definition_dir",
    "load_definition",
]
