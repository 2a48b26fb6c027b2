"""The class web page's tokens (labkit.classroom.tokens): who a token belongs to, and what the file keeps."""

from __future__ import annotations

import hashlib
import json
import stat

from labkit.classroom.tokens import (
    TRAINEE,
    TRAINER,
    Holder,
    forget_tokens,
    identify,
    issue_trainee_token,
    issue_trainer_token,
    tokens_path,
)


def test_a_trainer_token_names_the_trainer_who_may_act_on_every_lab() -> None:
    token = issue_trainer_token("c1")
    holder = identify("c1", token)
    assert holder == Holder(TRAINER)
    assert holder.may_act_on("alice") and holder.may_act_on("bob")


def test_a_trainee_token_names_its_trainee_who_may_act_on_their_lab_alone() -> None:
    alice = issue_trainee_token("c1", "alice")
    bob = issue_trainee_token("c1", "bob")
    assert identify("c1", alice) == Holder(TRAINEE, "alice")
    assert identify("c1", bob) == Holder(TRAINEE, "bob")
    holder = identify("c1", alice)
    assert holder is not None and holder.may_act_on("alice") and not holder.may_act_on("bob")


def test_a_wrong_absent_or_other_class_token_names_nobody() -> None:
    token = issue_trainer_token("c1")
    assert identify("c1", token + "x") is None
    assert identify("c1", "") is None
    assert identify("c1", None) is None
    assert identify("c2", token) is None


def test_the_file_keeps_salted_hashes_only_and_only_its_owner_reads_it() -> None:
    trainer = issue_trainer_token("c1")
    alice = issue_trainee_token("c1", "alice")
    path = tokens_path("c1")
    text = path.read_text()
    assert trainer not in text and alice not in text
    stored = json.loads(text)
    assert set(stored) == {TRAINER, f"{TRAINEE}:alice"}
    unsalted = hashlib.sha256(alice.encode()).hexdigest()
    assert (
        len(stored[f"{TRAINEE}:alice"]["sha256"]) == 64 and stored[f"{TRAINEE}:alice"]["sha256"] != unsalted
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_issuing_again_replaces_the_old_token_and_leaves_the_others() -> None:
    old = issue_trainee_token("c1", "alice")
    trainer = issue_trainer_token("c1")
    new = issue_trainee_token("c1", "alice")
    assert new != old
    assert identify("c1", old) is None
    assert identify("c1", new) == Holder(TRAINEE, "alice")
    assert identify("c1", trainer) == Holder(TRAINER)


def test_forgetting_the_tokens_locks_everyone_out() -> None:
    token = issue_trainer_token("c1")
    forget_tokens("c1")
    assert identify("c1", token) is None
    assert not tokens_path("c1").exists()
