"""Which libvirt domains are a lab's: by the labels labkit writes, never by name prefix."""

from __future__ import annotations

from dataclasses import dataclass

from labkit.machines.domains import lab_domains


@dataclass
class FakeDomain:
    domain: str
    description: str | None

    def name(self) -> str:
        return self.domain

    def XMLDesc(self, flags: int) -> str:
        text = f"<description>{self.description}</description>" if self.description else ""
        return f"<domain><name>{self.domain}</name>{text}</domain>"


@dataclass
class FakeConn:
    domains: list[FakeDomain]

    def listAllDomains(self, flags: int) -> list[FakeDomain]:
        return self.domains


def _labelled(lab: str, node: str) -> FakeDomain:
    return FakeDomain(
        f"labkit-{lab}-{node}", f"labkit lab={lab} scenario=s node={node} path=/x/scenario.yaml"
    )


CONN = FakeConn(
    [
        _labelled("a", "node1"),
        _labelled("a-b", "node1"),
        _labelled("a-b", "node2"),
        FakeDomain("labkit-a-node9", None),  # not labelled by labkit: never labkit's to touch
        FakeDomain("labkit-a-node8", "labkit lab=other node=node8"),
    ]
)


def test_lab_a_is_not_lab_a_b() -> None:
    assert set(lab_domains(CONN, "a")) == {"node1"}
    assert set(lab_domains(CONN, "a-b")) == {"node1", "node2"}


def test_a_lab_that_does_not_exist_matches_nothing() -> None:
    assert lab_domains(CONN, "a-") == {}
    assert lab_domains(CONN, "") == {}


def test_nodes_filter() -> None:
    assert set(lab_domains(CONN, "a-b", ["node2"])) == {"node2"}
