"""The etcd endpoint is always written as an IP; a node name becomes its lab IP with a note saying why."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.errors import ScenarioError
from labkit.kinds.compile import load_scenario
from labkit.kinds.guides import guide_context
from labkit.model.endpoints import EndpointError, resolve_etcd_endpoint

from .scenario_factory import scenario_data, write_scenario

IPS = {"node1": "192.168.56.11", "node2": "192.168.56.12"}


def test_default_is_the_etcd_nodes_ip() -> None:
    assert resolve_etcd_endpoint(None, IPS, "node1").url == "http://192.168.56.11:2379"


def test_node_name_is_written_as_its_ip_with_the_reason() -> None:
    endpoint = resolve_etcd_endpoint("http://node1:2379", IPS, "node1")
    assert endpoint.url == "http://192.168.56.11:2379"
    assert (
        endpoint.note is not None
        and "flannel-io/flannel#977" in endpoint.note
        and "127.0.X.1" in endpoint.note
    )


def test_ip_is_kept_and_port_defaults() -> None:
    endpoint = resolve_etcd_endpoint("http://192.168.56.12", IPS, "node1")
    assert endpoint.url == "http://192.168.56.12:2379" and endpoint.note is None


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("192.168.56.11:2379", ["no scheme", "http://192.168.56.11:2379"]),
        ("http://etcd.example:2379", ["not a node", "192.168.56.11"]),
        ("ftp://node1:2379", ["not an http(s) URL"]),
    ],
)
def test_what_cannot_be_written_is_refused(given: str, words: list[str]) -> None:
    with pytest.raises(EndpointError) as caught:
        resolve_etcd_endpoint(given, IPS, "node1")
    text = f"{caught.value.message} {caught.value.hint}"
    for word in words:
        assert word in text


def test_scenario_hostname_reaches_templates_as_ip(tmp_path: Path) -> None:
    data = scenario_data()
    data["network"]["etcd_endpoint"] = "http://node1:2379"
    context = guide_context(load_scenario(write_scenario(tmp_path, data)))
    assert context["etcd_endpoint"] == "http://192.168.56.11:2379"
    assert context["notes"] and "written as http://192.168.56.11:2379" in context["notes"][0]


def test_validation_names_the_field(tmp_path: Path) -> None:
    data = scenario_data()
    data["network"]["etcd_endpoint"] = "node1:2379"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write_scenario(tmp_path, data))
    assert "network.etcd_endpoint" in str(caught.value) and "http://node1:2379" in str(caught.value)
