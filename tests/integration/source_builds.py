"""flanneld and the CNI plugins built from their projects' own source, for tests that run the real programs.

No release binary of flanneld or of the CNI plugins 0.8.7 can be downloaded here. ``../shared/upstream/`` (beside
the repository; ``LABKIT_UPSTREAM_DIR`` elsewhere) holds each project's ``git archive`` at the course's tag with
its ``vendor/`` tree; its README gives the sha256 of each tarball and the build commands, which this module
follows: Debian's Go 1.19, no network (``GOPROXY=off``, ``-mod=vendor``).

A build is kept under ``$XDG_CACHE_HOME/labkit-tests/builds/`` keyed by the source tarball's sha256 and the
recipe's own version, so a second run (or a second test module) takes it as it is: flanneld takes ~66 s from a
cold Go cache on 2 cores, the 17 plugins ~9 s. A tarball whose sha256 differs from the README's is refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

GO_BIN = Path("/usr/lib/go-1.19/bin")
RECIPE = "1"
"""Bumped when the build commands below change, so an older build in the cache is not taken for a new one."""


def upstream_dir() -> Path:
    env = os.environ.get("LABKIT_UPSTREAM_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "upstream"


def cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "labkit-tests" / "builds"


@dataclass(frozen=True)
class SourceBuild:
    """One program (or set of programs) built from a project's source tarball at a tag."""

    name: str
    version: str
    tarball: str
    sha256: str
    project: str
    commit: str
    prefix: str
    """The tarball's top directory (``git archive --prefix``)."""
    outputs: tuple[str, ...]
    """What the build leaves, relative to the source tree: files, or a directory of files."""

    @property
    def source_note(self) -> str:
        return (
            f"built from {self.project} v{self.version} ({self.commit[:8]}…) source with Debian's Go 1.19, "
            "not the release file; real sha256 of that build"
        )

    def why_not(self) -> str | None:
        """Why this build cannot be made on this host (a skip message), or None."""
        source = upstream_dir() / self.tarball
        if not source.is_file():
            return f"{source} absent (the upstream source the tests build {self.name} from)"
        missing = [tool for tool in (str(GO_BIN / "go"), "/usr/bin/gcc") if not Path(tool).is_file()]
        if missing:
            return f"{', '.join(missing)} absent: apt-get install -y golang-1.19-go gcc libc6-dev"
        return None

    def built(self) -> Path:
        """The build's output directory (its source tree's outputs), built once per source sha256."""
        why = self.why_not()
        if why is not None:
            raise FileNotFoundError(why)
        source = upstream_dir() / self.tarball
        digest = _sha256(source)
        if digest != self.sha256:
            raise ValueError(
                f"{source}: sha256 {digest}, not the {self.sha256} that shared/upstream/README.md gives"
            )
        done = cache_root() / f"{self.name}-{self.version}-{digest[:16]}-r{RECIPE}"
        if (done / ".complete").is_file():
            return done
        done.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{self.name}-", dir=done.parent) as tmp:
            work = Path(tmp)
            subprocess.run(["tar", "-xzf", str(source), "-C", str(work)], check=True)
            tree = work / self.prefix
            _run_build(self, tree, work)
            staged = work / "out"
            staged.mkdir()
            for output in self.outputs:
                src = tree / output
                dest = staged / Path(output).name
                if src.is_dir():
                    shutil.copytree(src, dest)
                else:
                    shutil.copy2(src, dest)
            (staged / ".complete").write_text(f"{digest}\n", encoding="utf-8")
            shutil.rmtree(done, ignore_errors=True)
            staged.rename(done)
        return done


def _go_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{GO_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            "GOPROXY": "off",
            "GOFLAGS": "-mod=vendor",
            "GOPATH": str(work / "gopath"),
            "GOCACHE": str(cache_root() / "go-cache"),
        }
    )
    return env


def _run_build(build: SourceBuild, tree: Path, work: Path) -> None:
    env = _go_env(work)
    if build.name == "flanneld":
        # as flannel's Makefile builds dist/flanneld-amd64: cgo on (the UDP backend needs it), static
        env["CGO_ENABLED"] = "1"
        ldflags = f'-s -w -X github.com/coreos/flannel/version.Version=v{build.version} -extldflags "-static"'
        command = ["go", "build", "-o", "flanneld", "-ldflags", ldflags, "."]
    else:
        # as the plugins' build_linux.sh does (it sets -mod=vendor itself)
        env["CGO_ENABLED"] = "0"
        env.pop("GOFLAGS")
        ldflags = (
            "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion="
            f"v{build.version}"
        )
        command = ["bash", "build_linux.sh", "-ldflags", ldflags]
    result = subprocess.run(
        command, cwd=tree, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"building {build.name} {build.version} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


FLANNELD = SourceBuild(
    name="flanneld",
    version="0.13.0",
    tarball="flannel-v0.13.0.tar.gz",
    sha256="355f411f94e574e6f6f4586d007ea622cbb70faf16b9b24851790aa0f5c15b3b",
    project="flannel-io/flannel",
    commit="be2cb996dab08c68614a05e3bf30020c0a9fbafc",
    prefix="flannel-0.13.0",
    outputs=("flanneld",),
)
CNI_PLUGINS = SourceBuild(
    name="cni-plugins",
    version="0.8.7",
    tarball="cni-plugins-v0.8.7.tar.gz",
    sha256="5418ddeb36e7a06d3e197b238951e2c667ec6d763f9adfa0e22e8cb3f8650f78",
    project="containernetworking/plugins",
    commit="9b8de6a613657df14a3a5958642872fa9855d570",
    prefix="plugins-0.8.7",
    outputs=("bin",),
)
SOURCE_BUILDS = {(b.name, b.version): b for b in (FLANNELD, CNI_PLUGINS)}
