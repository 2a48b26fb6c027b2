"""Findings in etcd's answers: unreachable, v2 off, the network config missing or in the other API's keys."""

from __future__ import annotations

import shlex

from labkit.kinds.diagnoses.finding import Finding
from labkit.kinds.diagnoses.flannel.expectations import Expectations, version_tuple
from labkit.kinds.diagnoses.flannel.facts import Facts
from labkit.kinds.diagnoses.flannel.findings import (
    CONFIG_IN_WRONG_API,
    ETCD_UNREACHABLE,
    ETCD_V2_OFF,
    NETWORK_CONFIG_MISSING,
)
from labkit.kinds.diagnoses.flannel.script import DEFAULT_ENDPOINT


def flannel_api(facts: Facts, want: Expectations) -> tuple[int | None, str]:
    """The etcd API the node's flannel reads (2 up to 0.17, 3 from 0.18) and the version it is based on."""
    shown = want.flannel_version or facts.flanneld_version
    version = version_tuple(shown)
    if version is None:
        return None, "?"
    return (2 if version < (0, 18) else 3), f"v{'.'.join(str(v) for v in version)}"


SEED_NETWORK_CONFIG = (
    '{ "Network": "10.0.0.0/16", "SubnetLen": 24, "Backend": { "Type": "udp", "Port": 7890 } }'
)
"""The chapter's own value, shown in a fix when neither the scenario nor etcd gives one."""


def _put_command(api: int, want: Expectations, endpoint: str, value: str | None = None) -> str:
    """The etcdctl command that writes the network config through ``api`` (v2 ``set``, v3 ``put``)."""
    value = shlex.quote(value or want.network_config or SEED_NETWORK_CONFIG)
    verb = "set" if api == 2 else "put"
    return f"ETCDCTL_API={api} etcdctl --endpoints {endpoint} {verb} {want.key} {value}"


_UNREACHABLE = (
    "connection refused",
    "deadline exceeded",
    "no route to host",
    "timed out",
    "timeout",
    "could not resolve",
    "no such host",
    "cluster is unavailable",
    "failed to connect",
)


def _unreachable(detail: str) -> bool:
    return any(marker in detail.lower() for marker in _UNREACHABLE)


def etcd_findings(facts: Facts, want: Expectations) -> list[Finding]:
    found: list[Finding] = []
    api, flannel = flannel_api(facts, want)
    endpoint = want.etcd_endpoint or facts.endpoint_queried or DEFAULT_ENDPOINT
    if (
        facts.v2.state == "error"
        and facts.v3.state == "error"
        and all(_unreachable(read.detail) for read in (facts.v2, facts.v3))
    ):
        evidence = facts.with_flanneld(
            f"{facts.endpoint_queried}: v2: {facts.v2.detail}; v3: {facts.v3.detail}",
            "Couldn't fetch network config",
            "unavailable or misconfigured",
        )
        values = {"endpoint": facts.endpoint_queried, "suggest": want.etcd_endpoint or "http://ETCD_IP:2379"}
        return [Finding(ETCD_UNREACHABLE, evidence, values)]
    if facts.v2.state == "v2-off" and api != 3:
        # a flanneld running when v2 went away logs "Watch subnets: ... invalid json" and stays active, with
        # no restart; one started since logs "Couldn't fetch network config: ... invalid json" (both seen)
        evidence = facts.with_flanneld(facts.v2.detail, "response is invalid json")
        found.append(Finding(ETCD_V2_OFF, evidence, {"flannel": flannel}))
    reads = {2: facts.v2, 3: facts.v3}
    if api is not None:
        other = 5 - api
        if reads[api].state in ("absent", "v2-off") and reads[other].state == "present":
            evidence = f"v{other} {want.key} = {reads[other].value[:200]}; v{api}: {reads[api].detail}"
            values = {
                "key": want.key,
                "found": str(other),
                "wanted": str(api),
                "flannel": flannel,
                "command": _put_command(api, want, endpoint, reads[other].value.strip() or None),
            }
            found.append(Finding(CONFIG_IN_WRONG_API, evidence, values))
    wanted = [api] if api is not None else [2, 3]
    if all(reads[a].state == "absent" for a in wanted) and all(
        reads[a].state != "present" for a in (2, 3) if a not in wanted
    ):
        evidence = facts.with_flanneld(
            f"v2: {facts.v2.detail}; v3: {facts.v3.detail} (via {facts.endpoint_queried})", "Key not found"
        )
        values = {"key": want.key, "command": _put_command(api or 2, want, endpoint)}
        found.append(Finding(NETWORK_CONFIG_MISSING, evidence, values))
    return found
