"""Where Vagrant's well-known insecure key lives: used only for the very first SSH login to a fresh box."""

from __future__ import annotations

import glob
from pathlib import Path

from labkit import paths

_GEM_KEY_GLOBS = (
    "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant",
    "/opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant",
    "/opt/vagrant/embedded/gems/*/gems/vagrant-*/keys/vagrant",
)


def insecure_private_key() -> Path | None:
    """The insecure private key vagrant ships (or the copy in VAGRANT_HOME), or None when vagrant is absent."""
    home_copy = paths.vagrant_home() / "insecure_private_key"
    if home_copy.is_file():
        return home_copy
    for pattern in _GEM_KEY_GLOBS:
        for match in sorted(glob.glob(pattern), reverse=True):
            return Path(match)
    return None


def insecure_public_key() -> Path | None:
    for pattern in _GEM_KEY_GLOBS:
        for match in sorted(glob.glob(pattern + ".pub"), reverse=True):
            return Path(match)
    return None
