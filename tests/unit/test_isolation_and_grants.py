"""The pure parts of keeping a trainee lab to itself: the nft script of its isolation table, and the
authorized_keys rewrite that grants (and takes back) a trainee's key, run for real with bash on a file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from labkit.machines.guest import GRANT_MARK, grant_keys_script, granted_key_line
from labkit.machines.isolation import isolation_rules, table_name

LABKIT_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIlabkitkey labkit-lab-key"
TRAINEE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItrainee1 labkit-c-trainee1"
NEW_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItrainee1new laptop"


def test_table_names_keep_labs_apart() -> None:
    assert table_name("c-t1") == "labkit_lab_c_t1"
    assert table_name("c-t1") != table_name("c-t10")


def test_rules_let_in_only_dhcp_dns_and_answers_and_forward_nothing() -> None:
    rules = isolation_rules("c-t1", ["virbr3", "virbr4"])
    assert rules.startswith("add table inet labkit_lab_c_t1\ndelete table inet labkit_lab_c_t1\n")
    assert 'iifname { "virbr3", "virbr4" } ct state established,related accept' in rules
    assert "th dport 53 accept" in rules and "udp dport 67 accept" in rules
    assert rules.count('iifname { "virbr3", "virbr4" } counter drop') == 2  # input and forward
    assert 'oifname { "virbr3", "virbr4" } counter drop' in rules
    assert 'iifname "virbr4" oifname "virbr4" accept' in rules


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="nft -c needs root and nftables")
def test_nft_accepts_the_rules() -> None:
    netns = f"labkit-t-nft-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        checked = subprocess.run(
            ["ip", "netns", "exec", netns, "nft", "-c", "-f", "-"],
            input=isolation_rules("c-t1", ["virbr3", "virbr4"]),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert checked.returncode == 0, checked.stderr
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


def _run(script: str) -> None:
    subprocess.run(["bash", "-c", script], check=True, timeout=30)


def test_grants_are_written_replaced_and_taken_back_keeping_every_other_line(tmp_path: Path) -> None:
    keys = tmp_path / "authorized_keys"
    keys.write_text(LABKIT_KEY + "\n")
    _run(grant_keys_script({"trainee": TRAINEE_KEY}, str(keys)))
    assert keys.read_text().splitlines() == [
        LABKIT_KEY,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItrainee1 " + GRANT_MARK + "trainee",
    ]
    assert keys.stat().st_mode & 0o777 == 0o600
    _run(grant_keys_script({"trainee": NEW_KEY}, str(keys)))  # a rotated key replaces the old one
    assert keys.read_text().splitlines() == [LABKIT_KEY, granted_key_line("trainee", NEW_KEY)]
    _run(grant_keys_script({}, str(keys)))
    assert keys.read_text().splitlines() == [LABKIT_KEY]


def test_an_empty_or_missing_file_is_never_replaced_by_grants_alone(tmp_path: Path) -> None:
    keys = tmp_path / "authorized_keys"
    done = subprocess.run(["bash", "-c", grant_keys_script({"trainee": TRAINEE_KEY}, str(keys))], timeout=30)
    assert done.returncode != 0 and not keys.exists()


def test_a_non_key_is_refused() -> None:
    with pytest.raises(ValueError, match="not an OpenSSH public key"):
        granted_key_line("trainee", "hello world")
