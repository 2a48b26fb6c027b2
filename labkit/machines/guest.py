"""First configuration of a node, in one SSH round trip: hostname, lab IP, /etc/hosts, the lab's SSH key.

vagrant's own hostname and network configuration costs 35-45 s of SSH round trips per ``up`` under emulation
(vm-lab.md); one script per node, run in parallel, does the same in a few seconds. The script is idempotent
and prints what it changed, so a second ``labkit up`` can say that nothing changed.
"""

from __future__ import annotations

import base64
import ipaddress
import shlex
from dataclasses import dataclass

from labkit import paths
from labkit.model.scenario import Node, Scenario

NETWORKD_FILE = "/etc/systemd/network/20-labkit-lab.network"
AUTHORIZED_KEYS = "/home/vagrant/.ssh/authorized_keys"

# The box's first-boot host key unit generated the key only when the file did not exist. A host crash right
# after first boot left it 0 bytes (the write was never synced), and sshd never started again. Node set-up
# installs this script and a drop-in: a missing or empty key is made again, atomically, and synced.
HOSTKEY_SCRIPT = "/usr/local/sbin/labkit-ssh-hostkey"
HOSTKEY_DROPIN = "/etc/systemd/system/labkit-ssh-hostkey.service.d/20-labkit-nonempty.conf"
# The same script is in the box (boxes/debian12/files), where the box's own unit runs it from the very first
# boot; node set-up installs it too, for labs on boxes built before it was there.
HOSTKEY_SCRIPT_TEXT = (paths.boxes_dir() / "debian12" / "files" / HOSTKEY_SCRIPT.lstrip("/")).read_text()
HOSTKEY_DROPIN_TEXT = f"""# labkit: run when the key is missing or empty, not only when it does not exist
[Unit]
ConditionPathExists=
ConditionFileNotEmpty=|!/etc/ssh/ssh_host_ed25519_key
ConditionFileNotEmpty=|!/etc/ssh/ssh_host_ed25519_key.pub

[Service]
ExecStart=
ExecStart={HOSTKEY_SCRIPT}
"""


def hosts_file(scenario: Scenario) -> str:
    """Every node by its lab IP; never the 127.0.X.1 alias Vagrant writes for a VM's own name."""
    lines = [
        "# written by labkit: every node of the lab by its lab IP",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    lines += [f"{node.ip}\t{node.name}" for node in scenario.nodes]
    return "\n".join(lines)


def networkd_file(node: Node, scenario: Scenario, mac: str) -> str:
    prefix = ipaddress.IPv4Network(scenario.network.lab).prefixlen
    return "\n".join(
        [
            "# written by labkit: the lab network, fixed address, no DHCP",
            "[Match]",
            f"MACAddress={mac}",
            "",
            "[Network]",
            f"Address={node.ip}/{prefix}",
            "LinkLocalAddressing=no",
            "IPv6AcceptRA=no",
        ]
    )


def configure_script(node: Node, scenario: Scenario, lab_mac: str, public_key: str) -> str:
    """A bash script (run as root) that converges the node and prints ``changed <what>`` and ``iface <name>``."""
    q = shlex.quote
    return f"""set -eu
converge() {{  # converge PATH CONTENT MODE: rewrite PATH (atomically, synced) only when its content differs
  if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then
    mkdir -p "$(dirname "$1")"
    printf '%s\\n' "$2" > "$1.labkit-new"
    chmod "$3" "$1.labkit-new"
    sync "$1.labkit-new"
    mv "$1.labkit-new" "$1"
    echo "changed $1"
    return 0
  fi
  return 1
}}
name={q(node.name)}
if [ "$(cat /etc/hostname 2>/dev/null)" != "$name" ] || [ "$(hostname)" != "$name" ]; then
  converge /etc/hostname "$name" 644 >/dev/null || true
  hostname "$name"
  echo "changed hostname"
fi
# a missing or empty SSH host key is made again at boot (the box's unit only checked that it exists)
converge {HOSTKEY_SCRIPT} {q(HOSTKEY_SCRIPT_TEXT.rstrip(chr(10)))} 755 || true
if converge {HOSTKEY_DROPIN} {q(HOSTKEY_DROPIN_TEXT.rstrip(chr(10)))} 644; then
  systemctl daemon-reload
fi
converge /etc/hosts {q(hosts_file(scenario))} 644 || true
iface=$(ip -o link | awk -v mac={q(lab_mac)} 'tolower($0) ~ mac {{ sub(":", "", $2); print $2; exit }}')
[ -n "$iface" ] || {{ echo "no interface with MAC {lab_mac}" >&2; exit 3; }}
echo "iface $iface"
if converge {NETWORKD_FILE} {q(networkd_file(node, scenario, lab_mac))} 644; then
  networkctl reload
  networkctl reconfigure "$iface"
fi
for _ in $(seq 100); do
  ip -4 -o addr show dev "$iface" | grep -q {q(" " + node.ip + "/")} && break
  sleep 0.1
done
ip -4 -o addr show dev "$iface" | grep -q {q(" " + node.ip + "/")} \\
  || {{ echo "{node.ip} did not come up on $iface" >&2; exit 4; }}
# uploads are staged in the login user's home (labkit.kinds.steps.base.upload): nobody else may read it
[ "$(stat -c %a /home/vagrant)" = 700 ] || chmod 700 /home/vagrant
mkdir -p /home/vagrant/.ssh
if converge {AUTHORIZED_KEYS} {q(public_key)} 600; then
  chown -R vagrant:vagrant /home/vagrant/.ssh
  chmod 700 /home/vagrant/.ssh
fi
# a host crash right after first boot must not leave empty files behind (keys, networkd, hosts)
sync
"""


def remote_command(script: str) -> str:
    """The script as one command line (no stdin juggling): decoded and run by root's bash."""
    encoded = base64.b64encode(script.encode()).decode()
    return f"echo {encoded} | base64 -d | sudo bash"


@dataclass(frozen=True)
class NodeConfigResult:
    node: str
    changed: list[str]
    iface: str | None


def parse_output(node: str, stdout: str) -> NodeConfigResult:
    changed = [line.removeprefix("changed ") for line in stdout.splitlines() if line.startswith("changed ")]
    ifaces = [line.removeprefix("iface ") for line in stdout.splitlines() if line.startswith("iface ")]
    return NodeConfigResult(node, changed, ifaces[0] if ifaces else None)


GRANT_MARK = "labkit-grant:"


def granted_key_line(label: str, public_key: str) -> str:
    """``public_key`` (``type base64 [comment]``) as an authorized_keys line labkit recognises as its grant."""
    fields = public_key.split()
    if len(fields) < 2 or not fields[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise ValueError(f"not an OpenSSH public key: {public_key[:40]!r}")
    return f"{fields[0]} {fields[1]} {GRANT_MARK}{label}"


def grant_keys_script(granted: dict[str, str], keys: str = AUTHORIZED_KEYS) -> str:
    """A shell snippet (run as the vagrant user) leaving exactly ``granted`` as labkit's grants in
    authorized_keys; every other line (labkit's own key among them) is kept as it is."""
    lines = "".join(f" {shlex.quote(granted_key_line(label, key))}" for label, key in sorted(granted.items()))
    return (
        f"test -s {keys} && "
        + (
            f"{{ grep -v ' {GRANT_MARK}' {keys} || true; printf '%s\\n'{lines}; }} > {keys}.labkit-new"
            if granted
            else f"{{ grep -v ' {GRANT_MARK}' {keys} || true; }} > {keys}.labkit-new"
        )
        + f" && chmod 600 {keys}.labkit-new && mv {keys}.labkit-new {keys}"
    )
