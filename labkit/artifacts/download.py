"""Downloading an artifact into the host cache, verified on the way in: streamed into a temporary file, checked
against the expected sha256 (and the pinned sha512, if any), then renamed into place. A download with nothing to
check against has its sha256 recorded in the lock file, with a warning (trust on first use)."""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from labkit import __version__
from labkit.artifacts.catalog import Artifact
from labkit.artifacts.files import CHUNK, file_sha256, remove, replacing, stamp
from labkit.artifacts.lockfile import WarnFn
from labkit.artifacts.mirror import mirror_url, resolve_mirror
from labkit.artifacts.store import (
    cache_path,
    expected_sha256,
    first_use_warning,
    mismatch,
    mismatch512,
    record,
    record_verified_by_sha512,
)
from labkit.errors import HostError

log = logging.getLogger("labkit.artifacts")

TIMEOUT_SECONDS = 60.0

ProgressFn = Callable[[int, int | None], None]
"""Called with (bytes done, total bytes or None when the server does not say)."""


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


def _stream(
    response: Any,
    out: IO[bytes],
    artifact: Artifact,
    url: str,
    mirror: str | None,
    progress: ProgressFn | None,
) -> tuple[str, str]:
    """Copy the response body to ``out``, reporting progress; returns its sha256 and sha512. HostError when
    the body breaks off or is shorter than the server announced."""
    digest = hashlib.sha256()
    digest512 = hashlib.sha512()
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
    return digest.hexdigest(), digest512.hexdigest()


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
    with replacing(dest) as tmp:
        with tmp.open("wb") as out, _open(url, artifact, mirror) as response:
            got, got512 = _stream(response, out, artifact, url, mirror, progress)
        if expected is not None and got != expected:
            raise mismatch(artifact, expected, got, url)
        if artifact.sha512 and got512 != artifact.sha512:
            raise mismatch512(artifact, got512, url)
    stamp(dest, got)
    return got


def _usable_cached(artifact: Artifact, dest: Path, expected: str | None) -> bool:
    """Whether the file already at ``dest`` is the expected one; logs why not."""
    got = file_sha256(dest)
    if expected is None and artifact.sha512:
        try:
            record_verified_by_sha512(artifact, dest, got, f"cached {dest}")
            return True
        except HostError:
            log.warning("%s: cached %s does not match its sha512; downloading again", artifact, dest)
    elif expected is None:
        # trust on first use means the first *download*: a file that appeared in the cache is no record
        log.warning("%s: cached %s was never recorded; downloading it again to record it", artifact, dest)
    elif got == expected:
        return True
    else:
        log.warning("%s: cached %s does not match its sha256; downloading again", artifact, dest)
    return False


def _record_download(artifact: Artifact, url: str, dest: Path, sha256: str, warn: WarnFn) -> None:
    """Record the sha256 of a download the catalog pins none for (verified by its sha512, or first use)."""
    how = (
        f"download from {url}, verified against the pinned sha512 ({artifact.source})"
        if artifact.sha512
        else f"first download from {url}"
    )
    try:
        record(artifact, sha256, how)
    except HostError:
        remove(dest)  # another process recorded a different file meanwhile
        raise
    if not artifact.sha512:
        warn(first_use_warning(artifact, sha256, how))


def fetch(
    artifact: Artifact,
    mirror: str | None = None,
    progress: ProgressFn | None = None,
    *,
    warn: WarnFn | None = None,
) -> Path:
    """Make ``artifact`` present in the host cache, verified; returns its path.

    A cached file with the expected sha256 is not downloaded again. ``mirror``: a base URL (see
    :mod:`labkit.artifacts.mirror`); None means ``$LABKIT_MIRROR`` if set, ``""`` means the upstream URL. A sha256
    mismatch deletes the download and raises HostError with expected vs got and the URL. ``warn`` receives the
    warning given when a sha256 is recorded at first download (default: the ``labkit.artifacts`` logger).
    """
    warn = warn or log.warning
    base = resolve_mirror(mirror)
    dest = cache_path(artifact)
    expected = expected_sha256(artifact)
    if dest.is_file():
        if _usable_cached(artifact, dest, expected):
            return dest
        remove(dest)
    url = mirror_url(artifact.url, base)
    got = _download(artifact, url, dest, expected, base, progress)
    if expected is None:
        _record_download(artifact, url, dest, got, warn)
    return dest


def fetch_all(
    artifacts: list[Artifact], mirror: str | None = None, *, warn: WarnFn | None = None
) -> list[Path]:
    """Fetch several artifacts in order; stops at the first error."""
    return [fetch(a, mirror, warn=warn) for a in artifacts]
