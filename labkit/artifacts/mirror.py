"""The download mirror. Classrooms behind a proxy point labkit at a mirror base URL (``fetch(..., mirror=URL)``,
``labkit artifacts fetch --mirror URL``, env ``LABKIT_MIRROR``, or a scenario's mirror, in that order).
The mirror replaces the scheme and host of the upstream URL and keeps the host as the first path
segment, so one mirror serves every upstream::

    https://dl.k8s.io/release/v1.19.7/bin/linux/amd64/kubelet
      -> <mirror>/dl.k8s.io/release/v1.19.7/bin/linux/amd64/kubelet
    https://github.com/etcd-io/etcd/releases/download/v3.4.14/etcd-v3.4.14-linux-amd64.tar.gz
      -> <mirror>/github.com/etcd-io/etcd/releases/download/v3.4.14/etcd-v3.4.14-linux-amd64.tar.gz

The mirror is ``http://``, ``https://`` or ``file://`` (a shared directory laid out the same way, e.g.
filled with ``wget -x``). urllib's usual ``https_proxy`` / ``http_proxy`` / ``no_proxy`` variables apply as
well. Images map registries through it as described in :mod:`labkit.model.image_refs`.
"""

from __future__ import annotations

import os
import urllib.parse

from labkit.errors import UsageError

MIRROR_ENV = "LABKIT_MIRROR"
MIRROR_SCHEMES = ("http", "https", "file")


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
