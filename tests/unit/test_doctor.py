"""The pure parts of labkit doctor: plugin list parsing, memory arithmetic, box names."""

from __future__ import annotations

from dataclasses import dataclass

from labkit.hostsetup.doctor import _box_names, check_memory, mem_available_mib, parse_plugin_list

MEMINFO = "MemTotal:       24684092 kB\nMemFree:        24201304 kB\nMemAvailable:    4194304 kB\n"


def test_parse_plugin_list() -> None:
    text = "vagrant-libvirt (0.11.2, system)\nvagrant-scp (0.5.9, global)\n  - Version Constraint: > 0\n"
    assert parse_plugin_list(text) == {"vagrant-libvirt": "0.11.2", "vagrant-scp": "0.5.9"}
    assert parse_plugin_list("No plugins installed.\n") == {}


def test_mem_available() -> None:
    assert mem_available_mib(MEMINFO) == 4096
    assert mem_available_mib("MemTotal: 1 kB\n") is None


def test_memory_enough_under_kvm_not_under_tcg() -> None:
    kvm = check_memory(3, "kvm", MEMINFO)  # 3 x 1.1 GiB fit in 4 GiB
    assert kvm.ok and kvm.fix is None
    assert "4.0 GiB available" in kvm.detail
    tcg = check_memory(3, "qemu", MEMINFO)  # 3 x 1.5 GiB do not
    assert not tcg.ok
    assert "room for 2" in tcg.detail
    assert tcg.fix is not None


def test_memory_unknown() -> None:
    assert not check_memory(1, "qemu", "").ok


@dataclass
class Box:
    name: str


def test_box_names_accepts_strings_dicts_objects() -> None:
    assert _box_names(["a", {"name": "b"}, Box("c")]) == {"a", "b", "c"}
    assert _box_names(None) == set()
