"""What a trainee's access bundle says, as text: the gateway's authorized_keys line for the trainee's key, the
bundle's ssh_config, known_hosts and README. Pure: no file, no process.

Every value that ends up inside an ``authorized_keys`` option or an ssh_config line is checked here first (an
address must parse as an IP address, a key must look like one, a path must not hold a quote or a line break):
a stray ``"`` in a lab's state must not turn into an sshd option.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, urlsplit

from labkit.errors import UsageError

GATEWAY_HOST = "labkit-gateway"
"""The Host name of the class gateway in every bundle's ssh_config."""
ACCOUNT = "labkit-trainee"
"""The one account every trainee key logs in to on the gateway."""
NOLOGIN = "/usr/sbin/nologin"
NODE_USER = "vagrant"
SSH_PORT = 22

_KEY_TYPE = re.compile(r"^[a-z0-9@.-]+$")
_KEY_BLOB = re.compile(r"^[A-Za-z0-9+/]+={0,3}$")


@dataclass(frozen=True)
class Endpoint:
    """Where trainees reach the class gateway, and the host key it presents there (``type base64``)."""

    address: str
    port: int
    host_key: str


@dataclass(frozen=True)
class TraineeLab:
    """A trainee's lab as the bundle needs it: node name -> management IP, and the lab's recorded node host
    keys (its known_hosts lines, keyed by node name)."""

    trainee: str
    lab: str
    nodes: dict[str, str]
    host_keys: list[str] = field(default_factory=list)
    node_port: int = SSH_PORT
    node_user: str = NODE_USER
    host: str = "local"
    """The pool host the lab runs on."""
    relay_ports: dict[str, int] = field(default_factory=dict)
    """Node -> the gateway's loopback port that relays to it (a lab on another host: see ``relays``)."""

    def endpoint(self, node: str) -> tuple[str, int]:
        """Where the gateway connects for ``node``: its address and SSH port, or its relay's loopback port."""
        if node in self.relay_ports:
            return "127.0.0.1", self.relay_ports[node]
        return check_ip(self.nodes[node]), self.node_port


def default_bundle_dir(class_name: str) -> str:
    """Where a trainee unpacks the bundle: OpenSSH has no path relative to its config file, so the config
    names this directory."""
    return f"~/labkit-{class_name}"


def key_comment(class_name: str, trainee: str) -> str:
    return f"labkit-{class_name}-{trainee}"


def check_ip(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise UsageError(f"{address!r} is not an IP address", "give an IPv4 or IPv6 address") from None


def host_and_port(address: str, port: int) -> str:
    """``addr:port`` for permitopen (``[addr]:port`` for IPv6)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def known_hosts_name(address: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: the bare address on port 22, else ``[addr]:port``."""
    return address if port == SSH_PORT else f"[{address}]:{port}"


def check_public_key(public_key: str) -> tuple[str, str]:
    """(type, base64) of an OpenSSH public key line; anything else is refused."""
    parts = public_key.split()
    if len(parts) < 2 or not _KEY_TYPE.match(parts[0]) or not _KEY_BLOB.match(parts[1]):
        raise UsageError(f"not an OpenSSH public key: {public_key[:40]!r}", "make it with ssh-keygen")
    return parts[0], parts[1]


def authorized_keys_line(class_name: str, lab: TraineeLab, public_key: str) -> str:
    """The gateway's line for a trainee's key: a tunnel to the SSH port of the trainee's own nodes only; no
    shell, no pty, no agent or X11 forwarding, no remote forwarding (``restrict`` turns all of them off and
    ``port-forwarding`` turns local forwarding back on, limited by ``permitopen``)."""
    kind, blob = check_public_key(public_key)
    if not lab.nodes:
        raise UsageError(f"lab {lab.lab} has no node address", f"`labkit status --name {lab.lab}`")
    opens = ",".join(f'permitopen="{host_and_port(*lab.endpoint(node))}"' for node in lab.nodes)
    return f'restrict,port-forwarding,{opens},command="{NOLOGIN}" {kind} {blob} {key_comment(class_name, lab.trainee)}'


def check_bundle_dir(bundle_dir: str) -> str:
    """The directory a bundle's config names: absolute or under ``~/``, without quotes or line breaks."""
    text = bundle_dir.rstrip("/")
    if not (text.startswith("/") or text.startswith("~/")) or any(c in text for c in "\"'\n\r\t"):
        raise UsageError(
            f"--bundle-path {bundle_dir!r}: give an absolute path or one under ~/, without quotes",
            "for example ~/labkit-CLASS",
        )
    return text


def _config_path(path: str) -> str:
    return f'"{path}"' if " " in path else path


def _shell_path(path: str) -> str:
    """A path for a shell command line, ``~/`` left outside the quotes so the shell still expands it."""
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def _shell_dir(directory: str) -> str:
    if directory == "~":
        return "~"
    return _shell_path(directory or "/")


def login_command(bundle_dir: str, node: str) -> str:
    return f"ssh -F {_shell_path(bundle_dir + '/ssh_config')} {node}"


def _identity_lines(bundle_dir: str) -> list[str]:
    return [
        f"  IdentityFile {_config_path(bundle_dir + '/id_ed25519')}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {_config_path(bundle_dir + '/known_hosts')}",
        "  StrictHostKeyChecking yes",
        "  UpdateHostKeys no",
        "  ForwardAgent no",
        "  ForwardX11 no",
    ]


def ssh_config_text(class_name: str, lab: TraineeLab, gateway: Endpoint, bundle_dir: str) -> str:
    """A ``Host labkit-gateway`` block and one block per node, each node reached through the gateway."""
    blocks = [
        "\n".join(
            [
                f"# labkit class {class_name}, trainee {lab.trainee}: this bundle is {bundle_dir}/",
                f"# log in to a node with: {login_command(bundle_dir, next(iter(lab.nodes), 'NODE'))}",
            ]
        ),
        "\n".join(
            [
                f"Host {GATEWAY_HOST}",
                f"  HostName {gateway.address}",
                f"  Port {gateway.port}",
                f"  User {ACCOUNT}",
                *_identity_lines(bundle_dir),
                "  RequestTTY no",
            ]
        ),
    ]
    for node in lab.nodes:
        address, node_port = lab.endpoint(node)
        port = [f"  Port {node_port}"] if node_port != SSH_PORT else []
        blocks.append(
            "\n".join(
                [
                    f"Host {node}",
                    f"  HostName {address}",
                    *port,
                    f"  User {lab.node_user}",
                    f"  ProxyJump {GATEWAY_HOST}",
                    f"  HostKeyAlias {node}",
                    *_identity_lines(bundle_dir),
                ]
            )
        )
    return "\n\n".join(blocks) + "\n"


def known_hosts_text(gateway: Endpoint, lab: TraineeLab) -> str:
    """The gateway's host key under the address trainees use, then the lab's own lines for its nodes (keyed by
    node name: the bundle's ssh_config sets ``HostKeyAlias``)."""
    check_public_key(gateway.host_key)
    lines = [f"{known_hosts_name(gateway.address, gateway.port)} {gateway.host_key}"]
    for line in lab.host_keys:
        names = line.split(maxsplit=1)[0].split(",") if line.strip() else []
        if any(name in lab.nodes for name in names):
            lines.append(line.strip())
    return "\n".join(lines) + "\n"


def page_url(web_url: str, trainee: str, token: str) -> str:
    return f"{web_url.rstrip('/')}/trainee/{quote(trainee)}?token={quote(token)}"


def token_in(url: str) -> str | None:
    """The token of a page URL written earlier (kept when the web address changes)."""
    found = parse_qs(urlsplit(url.strip()).query).get("token")
    return found[0] if found else None


def readme_text(class_name: str, lab: TraineeLab, bundle_dir: str, tarball: str, url: str) -> str:
    """What the trainee reads first: where to unpack, what to type, where the class page is."""
    parent, _, name = bundle_dir.rpartition("/")
    first = next(iter(lab.nodes), "NODE")
    return "\n".join(
        [
            f"labkit class {class_name}: the lab of {lab.trainee}",
            "",
            f"1. Unpack this bundle so that its files are in {bundle_dir}/",
            f"     tar -xzf {tarball} -C {_shell_dir(parent)}",
            f"   ({name}/ holds id_ed25519, known_hosts, ssh_config and this file)",
            "",
            "2. Log in to a node of your lab:",
            f"     {login_command(bundle_dir, first)}",
            f"   Your nodes: {', '.join(lab.nodes)}",
            "",
            "3. Your lab's page in the browser:",
            f"     {url}",
            "",
            "The key in this bundle is yours alone: it opens an SSH connection to your own lab's nodes, through",
            "the class gateway, and nothing else (no shell on the gateway, no other lab). Keep it to yourself.",
            "",
        ]
    )
