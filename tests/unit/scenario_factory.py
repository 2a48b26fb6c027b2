"""A valid scenario as plain data, for tests that break one thing at a time."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

BASE: dict[str, Any] = {
    "name": "mini",
    "description": "two nodes",
    "network": {
        "lab": "192.168.56.0/24",
        "pods": "10.0.0.0/16",
        "services": "10.32.0.0/24",
        "cluster_dns": "10.32.0.10",
    },
    "versions": {"kubernetes": "1.19.7", "etcd": "3.4.14", "flannel": "0.13.0", "cni_plugins": "0.8.7"},
    "nodes": [
        {
            "name": "node1",
            "roles": ["etcd", "apiserver", "worker"],
            "ip": "192.168.56.11",
            "cpus": 1,
            "memory": "1536M",
        },
        {"name": "node2", "roles": ["worker"], "ip": "192.168.56.12"},
    ],
    "stages": [
        {
            "name": "etcd",
            "title": "etcd",
            "steps": [{"name": "install", "kind": "command", "on": ["etcd"], "args": {"run": "true"}}],
            "checks": [
                {"name": "running", "kind": "service", "on": ["node1"], "args": {"unit": "etcd.service"}}
            ],
        },
        {"name": "flannel", "title": "flannel", "requires": ["etcd"]},
    ],
}


def scenario_data() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def write_scenario(directory: Path, data: dict[str, Any] | str, name: str = "scenario.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path
