"""``flannel``: flannel works on this node, and when it does not, the findings that say why.

One remote command gathers every fact (:func:`labkit.kinds.diagnoses.flannel.script.facts_script`); the findings
come from those facts on the host. The check passes when flanneld is seen active and no finding is raised.
"""

from __future__ import annotations

from pydantic import field_validator

from labkit.kinds.checks.base import CheckArgs, CheckKind, Conn, Observation, last_line, run, templated
from labkit.kinds.diagnoses.flannel import (
    Expectations,
    diagnose,
    facts_script,
    parse_facts,
    summary,
    version_tuple,
)


class FlannelArgs(CheckArgs):
    etcd_key: str = "/coreos.com/network/config"
    flannel_version: str | None = None
    kubernetes_version: str | None = None
    conf: str = "/etc/flannel/flanneld.conf"
    lab_ip: str | None = None
    etcd_endpoint: str | None = None
    """The endpoint flanneld.conf should name (shown in the fix of ``hostname-endpoint``)."""
    network_config: str | None = None
    """The JSON the scenario writes at ``etcd_key`` (shown in the fixes that write it)."""

    @field_validator("flannel_version", "kubernetes_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not templated(value) and version_tuple(value) is None:
            raise ValueError(f"{value!r} is not a version such as 0.13.0")
        return value

    @field_validator("etcd_key", "conf")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not templated(value) and not value.startswith("/"):
            raise ValueError(f"{value!r} is not an absolute path")
        return value


class FlannelCheck(CheckKind):
    """flanneld active with nothing wrong in its conf, etcd's network config, the NIC, CNI, kubelet flags."""

    kind = "flannel"
    args_model = FlannelArgs
    args: FlannelArgs

    def expectations(self) -> Expectations:
        a = self.args
        return Expectations(
            key=a.etcd_key,
            conf_path=a.conf,
            flannel_version=a.flannel_version,
            kubernetes_version=a.kubernetes_version,
            lab_ip=a.lab_ip,
            etcd_endpoint=a.etcd_endpoint,
            network_config=a.network_config,
        )

    def examine(self, conn: Conn) -> Observation:
        result = run(conn, facts_script(self.args.conf, self.args.etcd_key))
        if result.exited != 0 or "@@labkit " not in result.stdout:
            return Observation(
                False,
                f"facts not gathered (exit {result.exited}): {last_line(result.stderr + result.stdout)}",
            )
        want = self.expectations()
        facts = parse_facts(result.stdout, want.key)
        findings = diagnose(facts, want)
        active = facts.unit.get("ActiveState") == "active" and facts.unit.get("LoadState") != "not-found"
        if findings:
            seen = f"{len(findings)} finding{'s' if len(findings) > 1 else ''}: " + ", ".join(
                dict.fromkeys(f.id for f in findings)
            )
            return Observation(False, seen, tuple(findings))
        return Observation(active, summary(facts, want))

    def probe(self, conn: Conn) -> tuple[bool, str]:
        seen = self.examine(conn)
        return seen.ok, seen.seen
