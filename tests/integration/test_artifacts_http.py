"""Artifacts over real HTTP: a server on 127.0.0.1 started by these tests serves real release-shaped files.

The upstream binaries cannot be downloaded here (no internet), and are never faked: the files are built from
Debian's etcd (packages etcd-server, etcd-client) and CNI plugins (containernetworking-plugins), laid out
exactly as the upstream releases are, and a test catalog pins their real sha256. The test catalog's
upstream hosts end in ``.invalid`` (a name that never resolves), so even a mirror-mapping bug cannot reach
the internet. No VM is needed; every test runs in seconds.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labkit import artifacts, paths
from labkit.artifacts import Artifact, Catalog
from labkit.errors import HostError

ETCD_BINARIES = [Path("/usr/bin/etcd"), Path("/usr/bin/etcdctl")]
CNI_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ["bridge", "host-local", "loopback", "portmap"]  # Debian's 1.x has no `flannel` plugin
ETCD_TAR = "etcd-v3.4.14-linux-amd64.tar.gz"
CNI_TGZ = "cni-plugins-linux-amd64-v0.8.7.tgz"
ETCD_URL = f"https://github.invalid/etcd-io/etcd/releases/download/v3.4.14/{ETCD_TAR}"
CNI_URL = f"https://github.invalid/containernetworking/plugins/releases/download/v0.8.7/{CNI_TGZ}"
BRIDGE_URL = "https://dl.invalid/release/v0.0.1/bin/linux/amd64/bridge"
LOOPBACK_URL = "https://github.invalid/flannel-io/flannel/releases/download/v0.13.0/flanneld-amd64"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sha512(path: Path) -> str:
    return hashlib.sha512(path.read_bytes()).hexdigest()


def _add(archive: tarfile.TarFile, source: Path, name: str) -> None:
    info = archive.gettarinfo(str(source), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    with source.open("rb") as handle:
        archive.addfile(info, handle)


@dataclass(frozen=True)
class Releases:
    """Release-shaped files built from Debian's binaries, with their real sha256."""

    root: Path
    etcd_tar: Path
    cni_tgz: Path

    @property
    def etcd_sha(self) -> str:
        return _sha256(self.etcd_tar)

    @property
    def cni_sha(self) -> str:
        return _sha256(self.cni_tgz)


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    missing = [str(p) for p in ETCD_BINARIES if not p.is_file()]
    missing += [str(CNI_DIR / p) for p in CNI_PLUGINS if not (CNI_DIR / p).is_file()]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} absent: apt-get install -y etcd-server etcd-client containernetworking-plugins"
        )
    root = tmp_path_factory.mktemp("releases")
    etcd_tar = root / ETCD_TAR
    with tarfile.open(etcd_tar, "w:gz", compresslevel=1) as archive:
        info = tarfile.TarInfo("etcd-v3.4.14-linux-amd64")
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)
        for binary in ETCD_BINARIES:
            _add(archive, binary, f"etcd-v3.4.14-linux-amd64/{binary.name}")
        readme = b"etcd built from Debian's etcd-server/etcd-client for labkit's tests\n"
        info = tarfile.TarInfo("etcd-v3.4.14-linux-amd64/README.md")
        info.size = len(readme)
        archive.addfile(info, io.BytesIO(readme))
    cni_tgz = root / CNI_TGZ
    with tarfile.open(cni_tgz, "w:gz", compresslevel=1) as archive:  # upstream's members are ./NAME
        for plugin in CNI_PLUGINS:
            _add(archive, CNI_DIR / plugin, f"./{plugin}")
    return Releases(root, etcd_tar, cni_tgz)


def _artifact(**fields: object) -> Artifact:
    return Artifact.model_validate({"source": "built by the test from Debian's binaries", **fields})


@pytest.fixture
def catalog(releases: Releases) -> Catalog:
    """The course's entries, shaped as the shipped catalog's, pinned to the test-built files."""
    return Catalog(
        artifacts=[
            _artifact(
                name="etcd",
                component="etcd",
                version="3.4.14",
                url=ETCD_URL,
                sha256=releases.etcd_sha,
                unpack="tar",
                install=[
                    {
                        "member": "etcd-v3.4.14-linux-amd64/etcd",
                        "path": "/usr/local/bin/etcd",
                        "mode": "0755",
                    },
                    {
                        "member": "etcd-v3.4.14-linux-amd64/etcdctl",
                        "path": "/usr/local/bin/etcdctl",
                        "mode": "0755",
                    },
                ],
            ),
            _artifact(
                name="cni-plugins",
                component="cni_plugins",
                version="0.8.7",
                url=CNI_URL,
                sha256=releases.cni_sha,
                unpack="tar",
                install=[{"member": p, "path": f"/opt/cni/bin/{p}", "mode": "0755"} for p in CNI_PLUGINS],
            ),
            # pinned by sha512 only (like the Kubernetes server tarball, whose changelog publishes that)
            _artifact(
                name="bridge",
                component="kubernetes",
                version="0.0.1",
                url=BRIDGE_URL,
                sha512=_sha512(CNI_DIR / "bridge"),
                install=[{"path": "/opt/cni/bin/bridge"}],
            ),
            # nothing published (like flanneld): recorded at first download
            _artifact(
                name="unpublished",
                component="flannel",
                version="0.13.0",
                url=LOOPBACK_URL,
                trust="first-use",
                install=[{"path": "/usr/local/bin/flanneld"}],
            ),
        ]
    )


class Mirror:
    """A mirror on 127.0.0.1: ``/<host>/<path>`` of each upstream URL -> a local file; counts requests."""

    def __init__(self) -> None:
        self.files: dict[str, Path | bytes] = {}
        self.hits: Counter[str] = Counter()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                mirror.hits[self.path] += 1
                content = mirror.files.get(self.path)
                if content is None:
                    self.send_error(404)
                    return
                data = content.read_bytes() if isinstance(content, Path) else content
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/mirror"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def serve(self, upstream_url: str, content: Path | bytes) -> str:
        mapped = artifacts.mirror_url(upstream_url, self.base)
        assert mapped.startswith(self.base + "/")  # never anything but this server
        self.files[mapped.removeprefix(self.base.removesuffix("/mirror"))] = content
        return mapped

    def count(self, upstream_url: str) -> int:
        return self.hits[
            artifacts.mirror_url(upstream_url, self.base).removeprefix(self.base.removesuffix("/mirror"))
        ]


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    monkeypatch.delenv(artifacts.MIRROR_ENV, raising=False)
    server = Mirror()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(timeout=10)


def _cache_files() -> list[Path]:
    root = paths.artifact_cache_dir()
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---- fetch ----------------------------------------------------------------------------------------------------


def test_fetch_downloads_once_and_extracts_a_working_etcd(
    releases: Releases, catalog: Catalog, mirror: Mirror
) -> None:
    etcd = catalog.get("etcd")
    mirror.serve(ETCD_URL, releases.etcd_tar)
    seen: list[tuple[int, int | None]] = []
    path = artifacts.fetch(etcd, mirror.base, progress=lambda done, total: seen.append((done, total)))
    assert path == paths.artifact_cache_dir() / "etcd" / "3.4.14" / ETCD_TAR
    assert _sha256(path) == releases.etcd_sha
    size = releases.etcd_tar.stat().st_size
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    assert mirror.count(ETCD_URL) == 1

    # cached once per host: the second fetch does not reach the server
    assert artifacts.fetch(etcd, mirror.base) == path
    assert mirror.count(ETCD_URL) == 1
    assert artifacts.cached_path(etcd) == path

    binary = artifacts.extract(etcd, "etcd-v3.4.14-linux-amd64/etcd")
    assert artifacts.member_sha256(etcd, "etcd-v3.4.14-linux-amd64/etcd") == _sha256(Path("/usr/bin/etcd"))
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert "etcd Version: 3.4" in out.stdout
    assert artifacts.extract(etcd, "etcd-v3.4.14-linux-amd64/etcd") == binary  # not extracted twice

    sources = artifacts.install_sources(etcd)
    assert [(s.path, s.mode) for s in sources] == [
        ("/usr/local/bin/etcd", 0o755),
        ("/usr/local/bin/etcdctl", 0o755),
    ]
    assert sources[1].sha256 == _sha256(Path("/usr/bin/etcdctl"))
    with pytest.raises(HostError, match=re.escape("no member 'etcd-v3.4.14-linux-amd64/etcdutl'")):
        artifacts.extract(etcd, "etcd-v3.4.14-linux-amd64/etcdutl")


def test_cni_members_answer_version(releases: Releases, catalog: Catalog, mirror: Mirror) -> None:
    cni = catalog.get("cni-plugins")
    mirror.serve(CNI_URL, releases.cni_tgz)
    artifacts.fetch(cni, mirror.base)
    for plugin in CNI_PLUGINS:
        binary = artifacts.extract(cni, plugin)
        assert artifacts.member_bytes(cni, plugin) == (CNI_DIR / plugin).read_bytes()
        if plugin == "bridge":
            result = subprocess.run(
                [str(binary)],
                env={"CNI_COMMAND": "VERSION", "PATH": os.environ.get("PATH", "")},
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert "supportedVersions" in json.loads(result.stdout)


def test_sha256_mismatch_is_refused_and_leaves_nothing(
    releases: Releases, catalog: Catalog, mirror: Mirror
) -> None:
    cni = catalog.get("cni-plugins")
    mirror.serve(CNI_URL, releases.etcd_tar)  # the wrong file behind the right name
    with pytest.raises(HostError) as caught:
        artifacts.fetch(cni, mirror.base)
    message = caught.value.message
    assert "sha256 mismatch" in message
    assert f"expected {releases.cni_sha}, got {releases.etcd_sha}" in message
    assert artifacts.mirror_url(CNI_URL, mirror.base) in message
    assert _cache_files() == []
    assert artifacts.cached_path(cni) is None


def test_the_shipped_pin_refuses_a_file_that_is_not_the_release(releases: Releases, mirror: Mirror) -> None:
    """The real catalog's etcd entry, served the Debian-built tarball: its upstream pin refuses it."""
    etcd = artifacts.load_catalog().get("etcd", "3.4.14")
    mirror.serve(etcd.url, releases.etcd_tar)
    with pytest.raises(HostError, match=f"expected {etcd.sha256}, got {releases.etcd_sha}"):
        artifacts.fetch(etcd, mirror.base)
    assert _cache_files() == []


def test_missing_file_on_the_mirror_says_where_it_looked(catalog: Catalog, mirror: Mirror) -> None:
    with pytest.raises(HostError, match="HTTP 404") as caught:
        artifacts.fetch(catalog.get("etcd"), mirror.base)
    assert caught.value.hint and artifacts.mirror_url(ETCD_URL, mirror.base) in caught.value.hint
    assert _cache_files() == []


def test_mirror_from_the_environment(
    releases: Releases, catalog: Catalog, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror.serve(CNI_URL, releases.cni_tgz)
    monkeypatch.setenv(artifacts.MIRROR_ENV, mirror.base)
    artifacts.fetch(catalog.get("cni-plugins"))
    assert mirror.count(CNI_URL) == 1


def test_file_mirror(releases: Releases, catalog: Catalog, tmp_path: Path) -> None:
    mapped = artifacts.mirror_url(ETCD_URL, f"file://{tmp_path}")
    target = Path(mapped.removeprefix("file://"))
    target.parent.mkdir(parents=True)
    shutil.copy(releases.etcd_tar, target)
    assert _sha256(artifacts.fetch(catalog.get("etcd"), f"file://{tmp_path}")) == releases.etcd_sha


def test_sha512_pin_is_checked_and_its_sha256_recorded(catalog: Catalog, mirror: Mirror) -> None:
    bridge = catalog.get("bridge")
    real = _sha256(CNI_DIR / "bridge")
    # the mirror serves another file, and a checksum file next to it that vouches for it: refused all the same
    mirror.serve(BRIDGE_URL, CNI_DIR / "portmap")
    mirror.serve(BRIDGE_URL + ".sha256", f"{_sha256(CNI_DIR / 'portmap')}  bridge\n".encode())
    with pytest.raises(HostError, match=f"sha512 mismatch .* got {_sha512(CNI_DIR / 'portmap')}"):
        artifacts.fetch(bridge, mirror.base)
    assert _cache_files() == []
    assert artifacts.recorded(bridge) is None
    assert mirror.count(BRIDGE_URL + ".sha256") == 0  # never even asked

    mirror.serve(BRIDGE_URL, CNI_DIR / "bridge")
    warnings: list[str] = []
    artifacts.fetch(bridge, mirror.base, warn=warnings.append)
    assert warnings == []  # verified against a pin: nothing to warn about
    entry = artifacts.recorded(bridge)
    assert entry and entry["sha256"] == real and "pinned sha512" in entry["how"]
    assert artifacts.expected_sha256(bridge) == real
    artifacts.fetch(bridge, mirror.base)  # cached: checked against the recorded sha256, not downloaded again
    assert mirror.count(BRIDGE_URL) == 2


def test_a_cached_first_use_file_without_a_record_is_not_trusted(catalog: Catalog, mirror: Mirror) -> None:
    unpublished = catalog.get("unpublished")
    planted = artifacts.cache_path(unpublished)
    planted.parent.mkdir(parents=True)
    planted.write_bytes((CNI_DIR / "portmap").read_bytes())  # put there by hand, never downloaded
    mirror.serve(LOOPBACK_URL, CNI_DIR / "loopback")
    warnings: list[str] = []
    path = artifacts.fetch(unpublished, mirror.base, warn=warnings.append)
    assert mirror.count(LOOPBACK_URL) == 1
    assert _sha256(path) == _sha256(CNI_DIR / "loopback")
    entry = artifacts.recorded(unpublished)
    assert entry and entry["sha256"] == _sha256(CNI_DIR / "loopback") and "first download" in entry["how"]


def test_first_download_is_recorded_with_a_warning_and_later_mismatch_refused(
    catalog: Catalog, mirror: Mirror
) -> None:
    unpublished = catalog.get("unpublished")
    first = _sha256(CNI_DIR / "loopback")
    mirror.serve(LOOPBACK_URL, CNI_DIR / "loopback")
    warnings: list[str] = []
    path = artifacts.fetch(unpublished, mirror.base, warn=warnings.append)
    assert len(warnings) == 1 and first in warnings[0] and "no checksum is published" in warnings[0]
    lock = json.loads(artifacts.lock_file().read_text())
    assert lock["artifacts"]["unpublished/0.13.0"]["sha256"] == first
    assert artifacts.sha256_source(unpublished).startswith("recorded")

    artifacts.fetch(unpublished, mirror.base, warn=warnings.append)  # cached, verified against the lock
    assert len(warnings) == 1 and mirror.count(LOOPBACK_URL) == 1

    # upstream now serves something else: a fresh download is refused against the recorded value
    path.unlink()
    mirror.serve(LOOPBACK_URL, CNI_DIR / "portmap")
    with pytest.raises(HostError) as caught:
        artifacts.fetch(unpublished, mirror.base, warn=warnings.append)
    assert f"expected {first}, got {_sha256(CNI_DIR / 'portmap')}" in caught.value.message
    assert caught.value.hint and str(artifacts.lock_file()) in caught.value.hint
    assert artifacts.cached_path(unpublished) is None
    assert not path.exists()
    assert json.loads(artifacts.lock_file().read_text()) == lock


# ---- import ---------------------------------------------------------------------------------------------------


def test_import_fills_the_cache_and_verifies(releases: Releases, catalog: Catalog, tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    shutil.copy(releases.etcd_tar, downloads)
    shutil.copy(releases.cni_tgz, downloads)
    (downloads / "notes.txt").write_text("not an artifact")
    results = {r.file.name: r for r in artifacts.import_dir(downloads, catalog)}
    assert results[ETCD_TAR].status == "imported"
    assert results[CNI_TGZ].status == "imported"
    assert results["notes.txt"].status == "ignored"
    assert _sha256(artifacts.cached_path(catalog.get("etcd")) or Path("/nonexistent")) == releases.etcd_sha
    assert artifacts.member_sha256(catalog.get("cni-plugins"), "loopback") == _sha256(CNI_DIR / "loopback")

    again = {r.file.name: r.status for r in artifacts.import_dir(downloads, catalog)}
    assert again == {ETCD_TAR: "cached", CNI_TGZ: "cached", "notes.txt": "ignored"}


def test_mismatching_import_is_refused(releases: Releases, catalog: Catalog, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / ETCD_TAR).write_bytes(releases.etcd_tar.read_bytes() + b"\0")  # one byte appended
    shutil.copy(releases.cni_tgz, bad / "bridge")  # not the file the sha512 pin names
    results = {r.file.name: r for r in artifacts.import_dir(bad, catalog)}
    assert results[ETCD_TAR].status == "refused"
    assert f"expected {releases.etcd_sha}" in results[ETCD_TAR].message
    assert results["bridge"].status == "refused"
    assert "sha512 mismatch" in results["bridge"].message
    assert _cache_files() == []


def test_import_ignores_checksum_files_and_records_first_use(catalog: Catalog, tmp_path: Path) -> None:
    forged = tmp_path / "forged"
    forged.mkdir()
    shutil.copy(CNI_DIR / "portmap", forged / "bridge")
    (forged / "bridge.sha256").write_text(_sha256(CNI_DIR / "portmap") + "\n")  # vouches for the wrong file
    results = {r.file.name: r for r in artifacts.import_dir(forged, catalog)}
    assert results["bridge"].status == "refused" and "sha512 mismatch" in results["bridge"].message
    assert results["bridge.sha256"].status == "ignored"

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    shutil.copy(CNI_DIR / "bridge", downloads / "bridge")
    shutil.copy(CNI_DIR / "loopback", downloads / "flanneld-amd64")
    warnings: list[str] = []
    results = {r.file.name: r for r in artifacts.import_dir(downloads, catalog, warn=warnings.append)}
    assert results["bridge"].status == "imported" and "pinned sha512" in results["bridge"].message
    assert results["flanneld-amd64"].status == "imported"
    assert len(warnings) == 1 and "first import" in warnings[0]
    assert artifacts.cached_path(catalog.get("bridge")) is not None
    assert artifacts.expected_sha256(catalog.get("unpublished")) == _sha256(CNI_DIR / "loopback")

    # a different file under the same name is now refused against the recorded value
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(CNI_DIR / "portmap", other / "flanneld-amd64")
    (result,) = artifacts.import_dir(other, catalog)
    assert result.status == "refused" and "recorded on this host" in result.message


def test_cli_import_refuses_debian_etcd_against_the_shipped_pin(releases: Releases, tmp_path: Path) -> None:
    from labkit.cli.artifacts import app

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    shutil.copy(releases.etcd_tar, downloads)
    result = CliRunner().invoke(app, ["import", str(downloads), "--json"])
    assert isinstance(result.exception, HostError) and result.exception.exit_code == 3
    (row,) = json.loads(result.stdout)
    assert row["status"] == "refused" and row["artifact"] == "etcd 3.4.14"
    assert _cache_files() == []


def test_cli_fetch_reports_every_failure(releases: Releases, mirror: Mirror) -> None:
    """`labkit artifacts fetch` over the shipped catalog, against a mirror that only has a non-release etcd."""
    from labkit.cli.artifacts import app

    shipped = artifacts.load_catalog()
    mirror.serve(shipped.get("etcd").url, releases.etcd_tar)
    result = CliRunner().invoke(app, ["fetch", "--mirror", mirror.base])
    assert isinstance(result.exception, HostError)
    total = len(shipped.artifacts) + len(shipped.images)  # the images too go through the mirror (skopeo)
    assert f"{total} of {total} artifacts and images not fetched" in result.exception.message
    assert "sha256 mismatch" in result.output and "HTTP 404" in result.output
    assert mirror.count(shipped.get("etcd").url) == 1
    # one request per artifact, for the file itself: no checksum file is ever asked for
    assert all(mirror.count(a.url) == 1 for a in shipped.artifacts)
    files = {
        artifacts.mirror_url(a.url, mirror.base).removeprefix(mirror.base.removesuffix("/mirror"))
        for a in shipped.artifacts
    }
    others = [path for path in mirror.hits if path not in files]
    # the rest: skopeo asking the mirror's registry API for the images
    assert all(path.startswith(("/v1/", "/v2/")) for path in others), others
    assert _cache_files() == []


def test_import_tells_versions_of_one_name_apart(tmp_path: Path) -> None:
    def tool(version: str, sha256: str = "") -> Artifact:
        return _artifact(
            name="tool",
            component="flannel",
            version=version,
            url=f"https://example.invalid/v{version}/tool",
            sha256=sha256,
            trust="pinned" if sha256 else "first-use",
            install=[{"path": "/usr/local/bin/tool"}],
        )

    pinned = Catalog(
        artifacts=[tool("1.0.0", _sha256(CNI_DIR / "bridge")), tool("2.0.0", _sha256(CNI_DIR / "loopback"))]
    )
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(CNI_DIR / "loopback", flat / "tool")
    (result,) = artifacts.import_dir(flat, pinned)
    assert (result.status, result.artifact) == ("imported", "tool 2.0.0")  # told apart by its sha256

    unpinned = Catalog(artifacts=[tool("1.0.0"), tool("1.0.01")])
    (result,) = artifacts.import_dir(flat, unpinned, warn=lambda _: None)
    assert result.status == "refused" and "directory named after its version" in result.message
    nested = tmp_path / "nested" / "v1.0.0"
    nested.mkdir(parents=True)
    shutil.copy(CNI_DIR / "portmap", nested / "tool")
    (result,) = artifacts.import_dir(tmp_path / "nested", unpinned, warn=lambda _: None)
    assert (result.status, result.artifact) == ("imported", "tool 1.0.0")
