"""A real test image and a real registry on loopback, for the image tests (host and VM).

No upstream image can be pulled here and none is ever faked: the test image has its own name
(``labkit.test/busybox:1.35``) and is built from Debian's ``busybox-static`` binary as a real docker-archive
(``manifest.json``, the image config, one layer tar holding ``/bin/busybox``). :func:`run_registry` starts
Debian's ``docker-registry`` on 127.0.0.1 (a free port, its own storage directory) and stops it by its PID;
:func:`push` puts an archive into it with skopeo and returns the manifest digest the registry serves, which a
test catalog then pins so ``labkit artifacts fetch`` pulls it by digest through the mirror mapping.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from labkit import artifacts

BUSYBOX = Path("/bin/busybox")
TEST_REFERENCE = "labkit.test/busybox:1.35"
REGISTRY = "/usr/bin/docker-registry"
SOURCE_NOTE = "test-built from Debian's busybox-static binary (not an upstream image); digest as pushed to a loopback registry"


def missing_tools() -> str | None:
    """Why the image tests cannot run on this host (for ``pytest.skip``), or None."""
    absent = [
        f"{path} ({package})"
        for path, package in (
            (BUSYBOX, "busybox-static"),
            (Path(REGISTRY), "docker-registry"),
            (Path(shutil.which("skopeo") or "/usr/bin/skopeo"), "skopeo"),
        )
        if not path.exists()
    ]
    if absent:
        return f"{', '.join(absent)} absent: apt-get install -y skopeo docker-registry busybox-static"
    return None


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def build_busybox_archive(target: Path, reference: str = TEST_REFERENCE, binary: Path = BUSYBOX) -> str:
    """Write a docker-archive of a one-layer image holding ``binary`` as ``/bin/busybox`` (and ``/bin/sh``),
    tagged ``reference``; the same inputs give the same bytes. Returns the image ID (sha256 of the config)."""
    data = binary.read_bytes()
    layer = _tar_bytes(
        [
            (_info("bin", tarfile.DIRTYPE, 0o755), None),
            (_info("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), data),
            (_info("bin/sh", tarfile.SYMTYPE, 0o777, link="busybox"), None),
        ]
    )
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"labkit test: {binary}"}],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    layer_name = f"{diff_id.removeprefix('sha256:')}/layer.tar"
    manifest = json.dumps(
        [{"Config": f"{config_hex}.json", "RepoTags": [reference], "Layers": [layer_name]}]
    ).encode()
    archive = _tar_bytes(
        [
            (_info(f"{config_hex}.json", tarfile.REGTYPE, 0o644, len(config)), config),
            (_info(layer_name.split("/")[0], tarfile.DIRTYPE, 0o755), None),
            (_info(layer_name, tarfile.REGTYPE, 0o644, len(layer)), layer),
            (_info("manifest.json", tarfile.REGTYPE, 0o644, len(manifest)), manifest),
        ]
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(archive)
    return f"sha256:{config_hex}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Registry:
    url: str
    """``http://127.0.0.1:PORT``: the mirror base URL labkit is given."""
    host: str
    pid: int


@contextlib.contextmanager
def run_registry(workdir: Path) -> Iterator[Registry]:
    """Debian's docker-registry on 127.0.0.1:<free port>, storing under ``workdir``; stopped by PID at the end."""
    port = _free_port()
    storage = workdir / "registry-storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = workdir / "registry.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(storage)}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        ),
        encoding="utf-8",
    )
    log = (workdir / "registry.log").open("wb")
    process = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v2/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: {(workdir / 'registry.log').read_text()}")
            time.sleep(0.2)
        yield Registry(url, f"127.0.0.1:{port}", process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def push(archive: Path, registry: Registry, repository: str, tag: str, workdir: Path) -> str:
    """Push a docker-archive to ``registry`` as REPOSITORY:TAG with skopeo; the manifest digest it serves."""
    digest_file = workdir / f"digest-{hashlib.sha256(repository.encode()).hexdigest()[:8]}"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"docker-archive:{archive}",
            f"docker://{registry.host}/{repository}:{tag}",
            "--digestfile",
            str(digest_file),
        ],
        check=True,
        capture_output=True,
    )
    return digest_file.read_text().strip()


def test_catalog(workdir: Path, entries: list[dict[str, Any]]) -> Path:
    """A copy of the shipped catalog with ``entries`` added under ``images:``."""
    catalog = yaml.safe_load(artifacts.CATALOG_FILE.read_text(encoding="utf-8"))
    catalog["images"] = [*catalog.get("images", []), *entries]
    path = workdir / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class ServedImage:
    reference: str
    digest: str
    image_id: str
    archive: Path
    registry: Registry
    catalog_file: Path


@contextlib.contextmanager
def serve_test_image(
    workdir: Path, name: str = "testbox", reference: str = TEST_REFERENCE
) -> Iterator[ServedImage]:
    """The test image built, pushed into a loopback registry under its registry-host-first repository (as
    labkit's mirror mapping asks for it), and a test catalog pinning the digest the registry serves."""
    from labkit.model.image_refs import parse_reference

    ref = parse_reference(reference)
    archive = workdir / "built" / "testbox.tar"
    image_id = build_busybox_archive(archive, reference)
    with run_registry(workdir) as registry:
        digest = push(archive, registry, f"{ref.registry}/{ref.repository}", ref.tag, workdir)
        catalog = test_catalog(
            workdir, [{"name": name, "reference": reference, "digest": digest, "source": SOURCE_NOTE}]
        )
        yield ServedImage(reference, digest, image_id, archive, registry, catalog)


def main() -> None:
    """Build the test image into the current directory (to look at it by hand)."""
    print(build_busybox_archive(Path(os.getcwd()) / "testbox.tar"))


if __name__ == "__main__":
    main()
