"""Fabric connections to a lab's nodes: the lab's key (or Vagrant's insecure key on a fresh box), no user config.

One Connection per node, reused for every command of a phase; paramiko is told nothing about the user's own
~/.ssh/config or agent, so a developer's settings never change what labkit does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fabric import Config, Connection

from labkit.sshkeys import SSH_USER

CONNECT_TIMEOUT = 30


def fabric_config() -> Config:
    # in_stream=False: labkit's remote commands never read the caller's stdin (a CLI user's terminal, pytest)
    return Config(
        overrides={"load_ssh_configs": False, "run": {"hide": True, "warn": True, "in_stream": False}}
    )


def connect(host: str, keys: list[Path], user: str = SSH_USER, port: int | None = None) -> Connection:
    """An (unopened) connection to ``host`` (``port``, default 22) trying ``keys`` in order."""
    connect_kwargs: dict[str, Any] = {
        "key_filename": [str(k) for k in keys if k.is_file()],
        "look_for_keys": False,
        "allow_agent": False,
        "banner_timeout": CONNECT_TIMEOUT,
        "auth_timeout": CONNECT_TIMEOUT,
    }
    return Connection(
        host=host,
        user=user,
        port=port,
        config=fabric_config(),
        connect_timeout=CONNECT_TIMEOUT,
        connect_kwargs=connect_kwargs,
    )
