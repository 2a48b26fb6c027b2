"""Files labkit puts on a remote libvirt host, for the clones it makes there: the box image a golden disk is
backed by (copied at most once per host, checked by sha256) and each clone's own overlay (always copied).

A copy streams the file through the OpenSSH client (measured on the second host: 205 MB/s with AES-GCM against
55 MB/s through paramiko) into ``dd conv=sparse`` on the host, so runs of zeros become holes again, writing
``PATH.labkit-part``. Only when that file's sha256, computed on the host, is the source's is it renamed to
``PATH``: a file at ``PATH`` is always whole.

Hashing a large file is slow (~160 MB/s on a small machine), so every sum is kept with the file's stat line
at the time it was summed (size, inode, modification and change times), here and for each host, in
:func:`labkit.paths.host_files_dir`: a file whose stat line is unchanged is not hashed again; any write to it
changes its change time, so it is. Those records are not kept next to the files: libvirt lists every file of
a storage pool's directory, dot files too, as a volume.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from labkit.errors import HostError, LabError, UsageError
from labkit.machines.clones import copy_disk
from labkit.machines.libvirt_host import LibvirtHost
from labkit.paths import host_files_dir
from labkit.state import write_json

PART_SUFFIX = ".labkit-part"
HASH_BYTES_PER_SECOND = 20 * 2**20
"""The slowest hashing (or copying) speed a time limit allows for: a 1 GiB file gets 50 s more."""
BASE_TIMEOUT = 60.0
STAT_FORMAT = "%s %i %y %z"
"""size, inode, modification and change time (to the nanosecond): a changed file has another line."""
_records_lock = threading.Lock()


@dataclass(frozen=True)
class CopyReport:
    """One file made sure of on a host: whether it was copied, how long that took, its size and sha256."""

    path: str
    copied: bool
    seconds: float
    bytes: int
    sha256: str
    allocated: int | None = None
    """Bytes the copy takes on the host's disk (less than ``bytes`` where holes were kept), when copied."""


def _budget(size: int) -> float:
    return BASE_TIMEOUT + size / HASH_BYTES_PER_SECOND


# ---- sums, each with the stat line it was computed for ------------------------------------------------


def _records_file(host: str) -> Path:
    return host_files_dir() / f"{host}.json"


def _recorded(host: str, path: str, stamp: str) -> str | None:
    try:
        entry = json.loads(_records_file(host).read_text()).get(path)
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(entry, dict) and entry.get("stat") == stamp:
        return str(entry["sha256"])
    return None


def _record(host: str, path: str, stamp: str, sha256: str) -> None:
    file = _records_file(host)
    with _records_lock, _host_lock(f"{host}.records"):
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            data = {}
        data = data if isinstance(data, dict) else {}
        data[path] = {"stat": stamp, "sha256": sha256}
        write_json(file, data)


@contextlib.contextmanager
def _host_lock(name: str) -> Iterator[None]:
    """An flock of this machine's: one copy to a host's file at a time (threads and processes alike)."""
    path = host_files_dir() / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def local_stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_ino} {st.st_mtime_ns} {st.st_ctime_ns}"


def local_sha256(path: Path) -> str:
    """The sha256 of a file here, hashed again only when the file changed since it was last hashed."""
    stamp = local_stamp(path)
    known = _recorded("local", str(path), stamp)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    _record("local", str(path), stamp, digest.hexdigest())
    return digest.hexdigest()


def remote_sha256(host: LibvirtHost, path: str, verify: bool = False) -> tuple[str, int] | None:
    """(sha256, size) of a file on ``host``, or None when it is not there. Hashed on the host (within a time
    limit for its size), unless its stat line is the one recorded with its last sum and not ``verify``."""
    found = host.run(["stat", "-c", STAT_FORMAT, "--", path], timeout=BASE_TIMEOUT)
    if not found.ok:
        return None
    stamp = found.stdout.strip()
    size = int(stamp.split()[0])
    known = None if verify else _recorded(host.name, path, stamp)
    if known is not None:
        return known, size
    quoted = shlex.quote(path)
    script = f"sha256sum < {quoted} && stat -c '{STAT_FORMAT}' -- {quoted}"
    summed = host.run(["sh", "-c", script], timeout=_budget(size))
    if not summed.ok:
        raise HostError(f"host {host.name}: cannot hash {path}: {summed.stderr.strip()}")
    digest, after = summed.stdout.split("\n", 1)
    digest = digest.split()[0]
    if after.strip() == stamp:  # unchanged while it was read: the sum belongs to this stat line
        _record(host.name, path, stamp, digest)
    return digest, size


def _source_sha256(host: LibvirtHost, path: str) -> tuple[str, int]:
    if not host.remote:
        return local_sha256(Path(path)), Path(path).stat().st_size
    found = remote_sha256(host, path)
    if found is None:
        raise LabError(f"{path} is not on host {host.name}: nothing to copy")
    return found


# ---- streaming ------------------------------------------------------------------------------------------


def _ssh(host: LibvirtHost, command: str) -> list[str]:
    return [*host.ssh_login().ssh_argv(), command]


def _receive_script(target: str, part: str) -> str:
    """On the target host: the stream into PART (holes kept), then PART's sha256 and its disk usage."""
    q = shlex.quote
    return (
        f"set -e; umask 022; mkdir -p -- {q(str(PurePosixPath(target).parent))}; "
        f"dd of={q(part)} bs=1M iflag=fullblock conv=sparse status=none; "
        f"sha256sum < {q(part)}; stat -c '%b %B' -- {q(part)}"
    )


def _stream(
    source: LibvirtHost, path: str, target: LibvirtHost, target_path: str, size: int
) -> tuple[str, int]:
    """Copy ``path`` of ``source`` to ``target_path``'s part file on ``target``; the copy's sha256 and
    allocated bytes there."""
    receive = _ssh(target, _receive_script(target_path, target_path + PART_SUFFIX))
    budget = _budget(size) * 2  # the stream, then the hash on the host
    try:
        if not source.remote:
            with open(path, "rb") as data:
                done = subprocess.run(receive, stdin=data, capture_output=True, timeout=budget, check=False)
        else:
            done = _relay(_ssh(source, f"cat -- {shlex.quote(path)}"), receive, budget)
    except subprocess.TimeoutExpired:
        raise HostError(f"copying {path} to host {target.name} took over {budget:.0f} s") from None
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip()
        raise HostError(f"copying {path} to host {target.name} failed (exit {done.returncode}): {why}")
    lines = done.stdout.decode().split("\n")
    blocks, block_size = (int(v) for v in lines[1].split())
    return lines[0].split()[0], blocks * block_size


def _relay(send: list[str], receive: list[str], budget: float) -> subprocess.CompletedProcess[bytes]:
    """``send``'s output piped into ``receive`` (a file from one host to another, through this machine)."""
    with subprocess.Popen(send, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as sender:
        try:
            done = subprocess.run(
                receive, stdin=sender.stdout, capture_output=True, timeout=budget, check=False
            )
        finally:
            assert sender.stdout is not None
            sender.stdout.close()
            sent = sender.wait(timeout=BASE_TIMEOUT)
    if done.returncode == 0 and sent != 0:
        assert sender.stderr is not None
        why = sender.stderr.read().decode(errors="replace").strip()
        return subprocess.CompletedProcess(send, sent, b"", f"reading the source failed: {why}".encode())
    return done


def _place(target: LibvirtHost, part: str, path: str, sha256: str, got: str) -> None:
    """Rename a verified copy into place and record its sum; a copy that differs is removed."""
    if got != sha256:
        target.run(["rm", "-f", "--", part], timeout=BASE_TIMEOUT)
        raise HostError(
            f"the copy of {path} on host {target.name} has sha256 {got}, not {sha256}: removed",
            hint="run the command again; if it fails again, look at the host's disk",
        )
    quoted = shlex.quote(path)
    moved = target.run(
        ["sh", "-c", f"mv -f -- {shlex.quote(part)} {quoted} && stat -c '{STAT_FORMAT}' -- {quoted}"],
        timeout=BASE_TIMEOUT,
    )
    if not moved.ok:
        raise HostError(f"host {target.name}: cannot put {path} in place: {moved.stderr.strip()}")
    _record(target.name, path, moved.stdout.strip(), sha256)


def copy_file(source: LibvirtHost, path: str, target: LibvirtHost, target_path: str) -> CopyReport:
    """Copy ``path`` of ``source`` to ``target_path`` on ``target``, always; verified by sha256 before it is
    put in place. The source must not change meanwhile (a shut-off domain's disk). ``target`` is remote."""
    if not target.remote:
        raise UsageError(f"copy_file copies to another host, and {target.name} is this machine")
    started = time.monotonic()
    sha256, size = _source_sha256(source, path)
    target.enter()
    got, allocated = _stream(source, path, target, target_path, size)
    _place(target, target_path + PART_SUFFIX, target_path, sha256, got)
    return CopyReport(target_path, True, time.monotonic() - started, size, sha256, allocated)


def ensure_copy(source: LibvirtHost, path: str, target: LibvirtHost, target_path: str) -> CopyReport:
    """``target_path`` on ``target`` made a copy of ``path`` of ``source``: copied only when it is missing
    there or its sha256 differs; one such copy at a time per target host."""
    started = time.monotonic()
    with _host_lock(target.name):
        sha256, size = _source_sha256(source, path)
        target.enter()
        there = remote_sha256(target, target_path)
        if there is not None and there[0] == sha256:
            return CopyReport(target_path, False, time.monotonic() - started, size, sha256)
        report = copy_file(source, path, target, target_path)
    return CopyReport(report.path, True, time.monotonic() - started, size, sha256, report.allocated)


def ensure_file(host: LibvirtHost, local_path: Path, remote_path: str) -> CopyReport:
    """A file of this machine on a remote ``host`` at ``remote_path``, checked by sha256, copied at most
    once. For this machine itself nothing is done (``copied`` False, no sum)."""
    if not host.remote:
        return CopyReport(remote_path, False, 0.0, local_path.stat().st_size, "")
    local = LibvirtHost(name="local", uri="qemu:///system", netns=host.netns)
    return ensure_copy(local, str(local_path), host, remote_path)


# ---- what a clone on another host needs -------------------------------------------------------------


def backing_files(host: LibvirtHost, disk: str) -> list[str]:
    """The files a qcow2 disk on ``host`` is backed by, nearest first (``qemu-img info --backing-chain``)."""
    argv = ["qemu-img", "info", "-U", "--backing-chain", "--output=json", "--", disk]
    found = host.run(argv, timeout=BASE_TIMEOUT)
    if not found.ok:
        raise LabError(f"host {host.name}: qemu-img info {disk} failed: {found.stderr.strip()}")
    return backing_chain_files(json.loads(found.stdout))


def backing_chain_files(chain: Any) -> list[str]:
    """The backing files in ``qemu-img info --backing-chain --output=json``'s answer (one disk or a list)."""
    images = chain if isinstance(chain, list) else [chain]
    return [str(image["filename"]) for image in images[1:]]


def ensure_backing_chain(source: LibvirtHost, target: LibvirtHost, overlay: str) -> list[CopyReport]:
    """Every file ``overlay`` (a golden's disk on ``source``) is backed by, on ``target`` at the same absolute
    path (the overlay names it so), each copied at most once per host, checked by sha256. Nothing to do on
    the same host."""
    if source.name == target.name:
        return []
    return [ensure_copy(source, path, target, path) for path in reversed(backing_files(source, overlay))]


def copy_overlay(source: LibvirtHost, target: LibvirtHost, overlay: str, target_path: str) -> CopyReport:
    """A golden's overlay (its disk, with its internal snapshots) copied to ``target_path`` on ``target``,
    always, verified by sha256. Copy its backing chain first (:func:`ensure_backing_chain`). On this machine
    alone it is :func:`labkit.machines.clones.copy_disk`'s local copy (no sum)."""
    if source.name != target.name:
        return copy_file(source, overlay, target, target_path)
    if not source.remote:
        started = time.monotonic()
        copy_disk(Path(overlay), Path(target_path))
        return CopyReport(target_path, True, time.monotonic() - started, Path(target_path).stat().st_size, "")
    return _copy_on_host(source, overlay, target_path)


def _copy_on_host(host: LibvirtHost, path: str, target_path: str) -> CopyReport:
    """A copy from one file of a remote host to another there (``cp``, holes kept), verified by sha256."""
    started = time.monotonic()
    sha256, size = _source_sha256(host, path)
    part = target_path + PART_SUFFIX
    copied = host.run(["cp", "--sparse=always", "--reflink=auto", "--", path, part], timeout=_budget(size))
    if not copied.ok:
        raise HostError(f"host {host.name}: copying {path} failed: {copied.stderr.strip()}")
    got = remote_sha256(host, part, verify=True)
    if got is None:
        raise HostError(f"host {host.name}: the copy {part} is gone")
    _place(host, part, target_path, sha256, got[0])
    return CopyReport(target_path, True, time.monotonic() - started, size, sha256)


__all__ = [
    "CopyReport",
    "backing_chain_files",
    "backing_files",
    "copy_file",
    "copy_overlay",
    "ensure_backing_chain",
    "ensure_copy",
    "ensure_file",
    "local_sha256",
    "remote_sha256",
]
