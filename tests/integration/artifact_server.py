"""Release-shaped artifacts for tests that solve stages on real VMs, served over HTTP on 127.0.0.1.

The upstream downloads (etcd, the CNI plugins, flanneld) cannot be fetched here (no internet) and are never
faked. Each file is made of real programs and laid out as the upstream release is: etcd and the CNI plugins
1.1.1 from Debian's packages' binaries, flanneld 0.13.0 and the CNI plugins 0.8.7 built from their projects'
source in ``../shared/upstream`` (:mod:`.source_builds`). A test catalog (a copy of the shipped one) pins each
file's real sha256 and says in ``source`` what it is. A mirror server (``http.server`` in a thread, on a random
port of 127.0.0.1) serves it at the path labkit's mirror mapping asks for, and ``LABKIT_CATALOG`` /
``LABKIT_MIRROR`` point labkit (in-process and in ``labkit`` subprocesses) at both::

    with serve_artifacts([("cni-plugins", "1.1.1")], tmp_dir) as served:
        served.fetch()              # into the host cache, verified, as `labkit solve` needs it
        ...                         # labkit up/solve ...

On exit the server stops, the environment is restored and the cache directories of the served artifacts are
removed (a directory that was there before is set aside at the start and put back), so the developer's cache
never keeps a test-built stand-in.

Run as a script to do the same by hand (``python -m tests.integration.artifact_server etcd 3.4.14 flanneld
0.13.0 cni-plugins 0.8.7``): it builds what is missing, fetches into the cache, prints the ``LABKIT_CATALOG``
to export, and serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import os
import shutil
import signal
import tarfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from labkit import artifacts, paths
from labkit.artifacts import Catalog

from .source_builds import SOURCE_BUILDS, SourceBuild

CATALOG_ENV = "LABKIT_CATALOG"
ETCD_BINARIES = (Path("/usr/bin/etcd"), Path("/usr/bin/etcdctl"))
CNI_DIR = Path("/usr/lib/cni")
DEBIAN_NOTE = (
    "test-built from Debian's {packages} binaries (not the upstream release); real sha256 of that file"
)


@dataclass(frozen=True)
class Builder:
    """How one artifact's release-shaped file is made here: its members, and what the catalog says of them."""

    members: Callable[[str], dict[str, Path]]
    """Archive member name -> file (for ``unpack: none``, the one file served)."""
    source: str
    """The catalog entry's ``source``: what the file really is."""
    why_not: Callable[[], str | None]
    """Why it cannot be made on this host (for ``pytest.skip``), or None."""


def _debian(members: Callable[[str], dict[str, Path]], packages: str, needs: tuple[Path, ...]) -> Builder:
    def why_not() -> str | None:
        absent = [str(p) for p in needs if not p.is_file()]
        return f"{', '.join(absent)} absent: apt-get install -y {packages}" if absent else None

    return Builder(members, DEBIAN_NOTE.format(packages=packages), why_not)


def _from_source(build: SourceBuild) -> Builder:
    def members(version: str) -> dict[str, Path]:
        out = build.built()
        if build.name == "flanneld":
            return {"flanneld-amd64": out / "flanneld"}
        # the release tarball's shape: every plugin flat, as ./NAME
        return {f"./{plugin.name}": plugin for plugin in sorted((out / "bin").iterdir()) if plugin.is_file()}

    return Builder(members, build.source_note, build.why_not)


def _etcd_members(version: str) -> dict[str, Path]:
    """etcd-vX-linux-amd64/{etcd,etcdctl}, from Debian's etcd-server and etcd-client."""
    return {f"etcd-v{version}-linux-amd64/{binary.name}": binary for binary in ETCD_BINARIES}


def _cni_members(version: str) -> dict[str, Path]:
    """Every plugin of Debian's containernetworking-plugins, flat, as upstream's ``./NAME`` members."""
    return {f"./{plugin.name}": plugin for plugin in sorted(CNI_DIR.iterdir()) if plugin.is_file()}


BUILDERS: dict[tuple[str, str], Builder] = {
    ("etcd", "3.4.14"): _debian(_etcd_members, "etcd-server etcd-client", ETCD_BINARIES),
    ("cni-plugins", "1.1.1"): _debian(_cni_members, "containernetworking-plugins", (CNI_DIR / "bridge",)),
    **{key: _from_source(build) for key, build in SOURCE_BUILDS.items()},
}
"""Every (catalog name, version) the server can make: etcd and CNI 1.1.1 from Debian's packages (the same
programs, Debian's build), flanneld 0.13.0 and the CNI plugins 0.8.7 built from their projects' source."""


def missing_binaries(name: str, version: str) -> str | None:
    """Why artifact ``name`` ``version`` cannot be made on this host (for ``pytest.skip``), or None."""
    builder = BUILDERS.get((name, version.removeprefix("v")))
    if builder is None:
        known = ", ".join(f"{n} {v}" for n, v in sorted(BUILDERS))
        return f"no builder for artifact {name} {version} (known: {known})"
    return builder.why_not()


def build_tarball(members: dict[str, Path], target: Path) -> None:
    """A .tar.gz of ``members`` (archive name -> file), root-owned, with parent directory entries; the same
    inputs give the same bytes (fixed mtimes), so the sha256 is stable between runs."""
    dirs = sorted(
        {str(Path(name).parents[i]) for name in members for i in range(len(Path(name).parents) - 1)}
        - {".", ""}
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        target.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for directory in dirs:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, source in members.items():
            info = tar.gettarinfo(str(source), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            with source.open("rb") as handle:
                tar.addfile(info, handle)


def _member_name(name: str) -> str:
    """``./bridge`` and ``bridge`` name the same archive member."""
    return "/".join(part for part in PurePosixPath(name).parts if part != ".")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _relative_url(url: str) -> str:
    """Where a mirror serves ``url``: its host, then its path (see :func:`labkit.artifacts.mirror_url`)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.netloc}{urllib.parse.unquote(parts.path)}"


@dataclass
class ServedArtifact:
    name: str
    version: str
    file: Path
    """The built file, under the served directory at the upstream URL's host and path."""
    sha256: str
    members: list[str]
    """The install members the test catalog keeps (those the built file really has)."""


@dataclass
class ServedArtifacts:
    root: Path
    mirror: str
    catalog_file: Path
    artifacts: list[ServedArtifact] = field(default_factory=list)

    @property
    def catalog(self) -> Catalog:
        return artifacts.load_catalog(self.catalog_file)

    def get(self, name: str) -> ServedArtifact:
        return next(a for a in self.artifacts if a.name == name)

    def fetch(self) -> list[Path]:
        """Fetch every served artifact into the host cache through the mirror, verified by the test catalog."""
        catalog = self.catalog
        return [artifacts.fetch(catalog.get(a.name, a.version), mirror=self.mirror) for a in self.artifacts]


def _test_entry(entry: dict[str, Any], built: Path, members: dict[str, Path], source: str) -> list[str]:
    """Rewrite a catalog entry for the built file; returns the install members kept."""
    entry["sha256"] = _sha256(built)
    entry.pop("sha512", None)
    entry["trust"] = "pinned"
    entry["source"] = source
    if entry.get("unpack") == "tar":
        present = {_member_name(name) for name in members}
        kept = [item for item in entry["install"] if _member_name(item["member"]) in present]
        if not kept:
            raise ValueError(
                f"{entry['name']} {entry['version']}: the built file has none of the catalog's members"
            )
        entry["install"] = kept
        return [_member_name(item["member"]) for item in kept]
    return []


@contextlib.contextmanager
def _set_aside(directory: Path) -> Iterator[None]:
    """Move an existing ``directory`` next to itself for the duration; afterwards whatever is there is
    removed and the original put back."""
    saved = directory.with_name(f".{directory.name}.saved-by-test-{os.getpid()}")
    existed = directory.exists()
    if existed:
        shutil.rmtree(saved, ignore_errors=True)
        directory.rename(saved)
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        if existed:
            saved.rename(directory)
        else:
            with contextlib.suppress(OSError):
                directory.parent.rmdir()  # the artifact's own directory, when nothing else is cached there


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_artifacts(wanted: list[tuple[str, str]], workdir: Path) -> Iterator[ServedArtifacts]:
    """Build each (catalog name, version) in ``wanted`` from Debian's binaries, write a test catalog, serve
    ``workdir`` on 127.0.0.1 and set ``LABKIT_CATALOG`` and ``LABKIT_MIRROR`` until the block ends."""
    shipped = yaml.safe_load(artifacts.CATALOG_FILE.read_text(encoding="utf-8"))
    root = workdir / "mirror"
    served: list[ServedArtifact] = []
    for name, version in wanted:
        version = version.removeprefix("v")
        why = missing_binaries(name, version)
        if why is not None:
            raise FileNotFoundError(why)
        entry = next(
            (e for e in shipped["artifacts"] if e["name"] == name and str(e["version"]) == version), None
        )
        if entry is None:
            raise KeyError(f"the shipped catalog has no {name} {version}")
        builder = BUILDERS[(name, version)]
        members = builder.members(version)
        target = root / _relative_url(entry["url"])
        if entry.get("unpack") == "none":
            (only,) = members.values()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(only, target)
        else:
            build_tarball(members, target)
        kept = _test_entry(entry, target, members, builder.source)
        served.append(ServedArtifact(name, version, target, entry["sha256"], kept))
    catalog_file = workdir / "catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(shipped, sort_keys=False), encoding="utf-8")

    def handler(*args: Any, **kwargs: Any) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="artifact-server", daemon=True)
    thread.start()
    mirror = f"http://127.0.0.1:{server.server_address[1]}"
    before = {key: os.environ.get(key) for key in (CATALOG_ENV, artifacts.MIRROR_ENV)}
    os.environ[CATALOG_ENV] = str(catalog_file)
    os.environ[artifacts.MIRROR_ENV] = mirror
    try:
        with contextlib.ExitStack() as caches:
            for item in served:
                caches.enter_context(_set_aside(paths.artifact_cache_dir() / item.name / item.version))
            yield ServedArtifacts(root, mirror, catalog_file, served)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def serve_artifact(
    name: str, version: str, workdir: Path
) -> contextlib.AbstractContextManager[ServedArtifacts]:
    """:func:`serve_artifacts` for one artifact."""
    return serve_artifacts([(name, version)], workdir)


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.integration.artifact_server NAME VERSION [NAME VERSION ...]``"""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("pairs", nargs="+", metavar="NAME VERSION")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give NAME VERSION pairs")
    wanted = list(zip(args.pairs[::2], args.pairs[1::2], strict=True))
    with (
        tempfile.TemporaryDirectory(prefix="labkit-artifacts-") as tmp,
        serve_artifacts(wanted, Path(tmp)) as served,
    ):
        for path in served.fetch():
            print(f"cached {path}", flush=True)
        print(f"export {CATALOG_ENV}={served.catalog_file}", flush=True)
        print(
            f"serving {served.mirror} (LABKIT_MIRROR); Ctrl-C or SIGTERM stops it and empties the cache entries",
            flush=True,
        )
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):  # a background job ignores SIGINT: TERM stops it too
            signal.signal(signum, lambda *_: stop.set())
        stop.wait()


if __name__ == "__main__":
    main()
