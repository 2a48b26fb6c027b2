"""Placing whole trainee labs over the class's hosts (pure arithmetic, no host)."""

from __future__ import annotations

import pytest

from labkit.classroom.placement import HostRoom, place
from labkit.errors import HostError

GIB = 2**30


def test_each_lab_goes_where_most_ram_is_left() -> None:
    rooms = [HostRoom("local", True, ram_free_mib=6000, disk_free_bytes=100 * GIB),
             HostRoom("h2", True, ram_free_mib=4000, disk_free_bytes=100 * GIB)]  # fmt: skip
    placed = place("c", ["t1", "t2", "t3"], rooms, 1400, GIB)
    # local has 6000, then 4600 (still more than h2's 4000), then 3200
    assert placed == {"t1": "local", "t2": "local", "t3": "h2"}


def test_equal_hosts_alternate_and_ties_go_to_the_first_given() -> None:
    rooms = [HostRoom("local", True, ram_free_mib=5000), HostRoom("h2", True, ram_free_mib=5000)]
    assert place("c", ["t1", "t2"], rooms, 1400, GIB) == {"t1": "local", "t2": "h2"}


def test_max_labs_disk_and_unreachable_hosts_are_respected() -> None:
    rooms = [
        HostRoom("local", True, ram_free_mib=50000, disk_free_bytes=100 * GIB, max_labs=1),
        HostRoom("h2", True, ram_free_mib=20000, disk_free_bytes=int(1.5 * GIB)),
        HostRoom("h3", False, reason="connection refused", ram_free_mib=90000),
    ]
    assert place("c", ["t1", "t2"], rooms, 1400, GIB) == {"t1": "local", "t2": "h2"}
    with pytest.raises(HostError) as refused:
        place("c", ["t1", "t2", "t3"], rooms, 1400, GIB)
    assert "3 trainee labs do not fit on local, h2, h3, 2 do" in refused.value.message
    assert "unreachable: h3 (connection refused)" in refused.value.message


def test_the_host_keeps_its_reserve() -> None:
    rooms = [HostRoom("local", True, ram_free_mib=1400 + 1023)]
    with pytest.raises(HostError):
        place("c", ["t1"], rooms, 1400, GIB)
