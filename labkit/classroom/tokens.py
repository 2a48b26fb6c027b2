"""The class web page's tokens: one for the trainer, one per trainee, stored only as hashes.

A token is 32 random bytes (URL-safe base64); the file ``$LABKIT_HOME/classes/CLASS.tokens.json`` (mode 0600)
keeps ``sha256(salt || token)`` per holder. Tokens carry 256 bits of entropy, so one fast hash is enough: what
matters is that a copy of the file lets nobody act as a trainee. Issuing again replaces the holder's token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from labkit.classroom.record import classes_dir
from labkit.state import write_json

TRAINER = "trainer"
TRAINEE = "trainee"


@dataclass(frozen=True)
class Holder:
    """Who a token belongs to: the trainer, or one trainee."""

    role: str
    trainee: str | None = None

    def may_act_on(self, trainee: str) -> bool:
        return self.role == TRAINER or self.trainee == trainee


def tokens_path(class_name: str) -> Path:
    return classes_dir() / f"{class_name}.tokens.json"


def _digest(salt: str, token: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + token.encode()).hexdigest()


def _read(class_name: str) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(tokens_path(class_name).read_text())
    except FileNotFoundError:
        return {}
    return {key: dict(value) for key, value in data.items()}


def _issue(class_name: str, key: str) -> str:
    token = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    stored = _read(class_name)
    stored[key] = {"salt": salt, "sha256": _digest(salt, token)}
    path = tokens_path(class_name)
    write_json(path, stored)
    path.chmod(0o600)
    return token


def issue_trainer_token(class_name: str) -> str:
    """A new trainer token (the old one stops working). Only its hash is kept."""
    return _issue(class_name, TRAINER)


def issue_trainee_token(class_name: str, trainee: str) -> str:
    """A new token for ``trainee`` (their old one stops working). Only its hash is kept."""
    return _issue(class_name, f"{TRAINEE}:{trainee}")


def identify(class_name: str, token: str | None) -> Holder | None:
    """The holder of ``token``, or None for an absent or unknown one. Every stored hash is compared, in
    constant time, so the answer's timing says nothing about which holder came close."""
    if not token:
        return None
    found: Holder | None = None
    for key, entry in _read(class_name).items():
        if hmac.compare_digest(_digest(entry["salt"], token), entry["sha256"]):
            role, _, trainee = key.partition(":")
            found = Holder(role, trainee or None)
    return found


def forget_tokens(class_name: str) -> None:
    tokens_path(class_name).unlink(missing_ok=True)
