"""A lab kept to itself: nftables rules on the lab host so its VMs reach neither other labs nor the host.

libvirt's own rules already stop routing out of an isolated network, but they let a VM open any port on the
host's address in its network (the class gateway, the web page, sshd, libvirt's own services). Each isolated
lab gets one table of its own, ``inet labkit_lab_<lab>``, in the namespace where its bridges live:

- input from the lab's bridges: only DHCP and DNS (the network's dnsmasq) and the answers to connections the
  host opened (labkit's SSH to the nodes) get in;
- forward: nothing enters or leaves the lab's bridges through the host; frames between two ports of one bridge
  stay allowed (they reach this hook only where br_netfilter is loaded).

The table is replaced as a whole in one nft transaction, and removed with the lab. It lives in the kernel only:
a restarted host (or host mode) loses it, and ``labkit class up`` or ``class access`` writes it again.
``nft`` runs on the lab's host: here in host mode's namespace, or over SSH on a remote host
(:meth:`LibvirtHost.run`), within :data:`NFT_TIMEOUT` either way.
"""

from __future__ import annotations

import json
from typing import Any

from labkit.errors import HostError, LabError
from labkit.machines.domains import management_network_name
from labkit.machines.host_ssh import CommandResult
from labkit.machines.libvirt_host import LibvirtHost
from labkit.machines.vagrantfile import lab_network

NFT_TIMEOUT = 15.0
PRIORITY = "filter - 5"  # before libvirt's own rules (priority filter); a drop here is final


def table_name(lab: str) -> str:
    # lab names are lowercase letters, digits and '-': '-' -> '_' keeps two names apart
    return "labkit_lab_" + lab.replace("-", "_")


def lab_bridges(conn: Any, lab: str) -> list[str]:
    """The host-side bridges of the lab's two networks."""
    import libvirt

    bridges = []
    for name in (management_network_name(lab), lab_network(lab).name):
        try:
            bridges.append(conn.networkLookupByName(name).bridgeName())
        except libvirt.libvirtError as exc:
            raise LabError(
                f"lab {lab}: network {name} is not there ({exc.get_error_message()})",
                f"`labkit status --name {lab}`; destroy the lab if it is gone",
            ) from None
    return bridges


def isolation_rules(lab: str, bridges: list[str]) -> str:
    """The nft script that (re)creates the lab's table."""
    table = table_name(lab)
    ifaces = "{ " + ", ".join(f'"{b}"' for b in bridges) + " }"
    same_bridge = "\n".join(f'    iifname "{b}" oifname "{b}" accept' for b in bridges)
    return f"""add table inet {table}
delete table inet {table}
table inet {table} {{
  chain input {{
    type filter hook input priority {PRIORITY}; policy accept;
    iifname {ifaces} ct state established,related accept
    iifname {ifaces} meta l4proto {{ tcp, udp }} th dport 53 accept
    iifname {ifaces} udp dport 67 accept
    iifname {ifaces} counter drop
  }}
  chain forward {{
    type filter hook forward priority {PRIORITY}; policy accept;
{same_bridge}
    iifname {ifaces} counter drop
    oifname {ifaces} counter drop
  }}
}}
"""


NOT_INSTALLED = 127
"""A shell's exit status for a program it cannot find."""


def _nft(host: LibvirtHost, args: list[str], script: str | None = None) -> CommandResult:
    try:
        result = host.run(["nft", *args], stdin=script, timeout=NFT_TIMEOUT)
    except HostError as exc:
        if host.remote:
            raise  # the host does not answer: that, not nft, is what the user must fix
        raise LabError(f"nft {' '.join(args)}: {exc.message}") from None
    if result.returncode == NOT_INSTALLED:
        raise LabError(
            f"nft is not installed on host {host.name}: labkit keeps trainee labs apart with nftables",
            "apt-get install nftables (scripts/setup-host does)",
        )
    return result


def isolate(host: LibvirtHost, lab: str) -> list[str]:
    """Write the lab's table (replacing an older one); returns the bridges it covers."""
    host.enter()  # nft runs where the bridges are: host mode's namespace, or the remote host
    bridges = lab_bridges(host.connect(), lab)
    result = _nft(host, ["-f", "-"], isolation_rules(lab, bridges))
    if result.returncode != 0:
        raise LabError(f"nft refused the isolation rules of lab {lab}: {result.stderr.strip()}")
    return bridges


def is_isolated(host: LibvirtHost, lab: str) -> bool:
    result = _nft(host, ["-j", "list", "table", "inet", table_name(lab)])
    if result.returncode != 0:
        return False
    chains = [o["chain"]["name"] for o in json.loads(result.stdout)["nftables"] if "chain" in o]
    return {"input", "forward"} <= set(chains)


def lift_isolation(host: LibvirtHost, lab: str) -> bool:
    """Remove the lab's table; False when there was none (or nft is not installed)."""
    try:
        result = _nft(host, ["delete", "table", "inet", table_name(lab)])
    except LabError:
        return False
    return result.returncode == 0
