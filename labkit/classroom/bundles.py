"""A trainee's access bundle on disk: ``trainees/<trainee>/`` with the trainee's key pair (kept across runs unless
rotated), ssh_config, known_hosts, README.txt and page-url.txt, and ``labkit-<class>-<trainee>.tar.gz`` of it
for handing out."""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from labkit.classroom import tokens
from labkit.classroom.access_paths import AccessPaths
from labkit.classroom.bundle_text import (
    Endpoint,
    TraineeLab,
    key_comment,
    known_hosts_text,
    login_command,
    page_url,
    readme_text,
    ssh_config_text,
    token_in,
)
from labkit.machines.sshkeys import make_key_pair

KEY = "id_ed25519"
PAGE_URL = "page-url.txt"


@dataclass
class Bundle:
    """What was made for one trainee, and what to hand out."""

    trainee: str
    lab: str
    directory: str
    tarball: str
    command: str
    page_url: str
    new_key: bool


def private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.chmod(mode)
    tmp.replace(path)


def public_key(paths: AccessPaths, trainee: str) -> str:
    return (paths.bundle(trainee) / f"{KEY}.pub").read_text().strip()


def _ensure_key(paths: AccessPaths, trainee: str, rotate: bool) -> bool:
    """The trainee's key pair, made when missing or when ``rotate``; True when made now."""
    key = paths.bundle(trainee) / KEY
    if not rotate and key.is_file() and key.with_name(f"{KEY}.pub").is_file():
        return False
    make_key_pair(key, key_comment(paths.class_name, trainee))
    return True


def _page_url(paths: AccessPaths, trainee: str, web_url: str, fresh: bool) -> str:
    """The trainee's page URL; the token written earlier is kept while the class still knows it, so a new
    ``--web-url`` does not log a trainee out."""
    written = paths.bundle(trainee) / PAGE_URL
    kept = None if fresh or not written.is_file() else token_in(written.read_text())
    holder = tokens.identify(paths.class_name, kept)
    if kept is None or holder is None or holder.trainee != trainee:
        kept = tokens.issue_trainee_token(paths.class_name, trainee)
    return page_url(web_url, trainee, kept)


def write_bundle(
    paths: AccessPaths, lab: TraineeLab, gateway: Endpoint, bundle_dir: str, web_url: str, rotate: bool
) -> Bundle:
    """Make or refresh one trainee's bundle and its tarball."""
    directory = paths.bundle(lab.trainee)
    private_dir(directory)
    fresh = _ensure_key(paths, lab.trainee, rotate)
    url = _page_url(paths, lab.trainee, web_url, fresh)
    tarball = paths.tarball(lab.trainee)
    class_name = paths.class_name
    _write(directory / "ssh_config", ssh_config_text(class_name, lab, gateway, bundle_dir))
    _write(directory / "known_hosts", known_hosts_text(gateway, lab))
    _write(directory / "README.txt", readme_text(class_name, lab, bundle_dir, tarball.name, url))
    _write(directory / PAGE_URL, url + "\n", 0o600)
    _write_tarball(directory, tarball, bundle_dir.rpartition("/")[2])
    first = next(iter(lab.nodes))
    return Bundle(
        trainee=lab.trainee,
        lab=lab.lab,
        directory=str(directory),
        tarball=str(tarball),
        command=login_command(bundle_dir, first),
        page_url=url,
        new_key=fresh,
    )


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owned by nobody in particular: the trainee who unpacks it owns the files."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _write_tarball(directory: Path, tarball: Path, top: str) -> None:
    """The bundle as ``top/...`` (the directory name its ssh_config expects), mode 0600: it holds the key."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        tar.add(directory, arcname=top, filter=_anonymous)
    fd = os.open(tarball.with_name(f".{tarball.name}.tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data.getvalue())
    tarball.with_name(f".{tarball.name}.tmp").replace(tarball)
