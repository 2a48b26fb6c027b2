"""``labkit host up|down|status``: host mode, for machines without systemd (CI, containers); with ``--name``,
a second libvirt host on this machine (:mod:`labkit.cli.second_host`).

Wired by labkit.cli.commands with ``app.add_typer(host.app, name="host")``; labkit's errors propagate to the
main app, which prints them in one line.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from labkit.cli import second_host
from labkit.errors import UsageError
from labkit.hostsetup import hostmode as host
from labkit.hostsetup import hoststate, processes

app = typer.Typer(
    help="Host mode for machines without systemd: run libvirtd inside a private network namespace, so "
    "every bridge, dnsmasq and firewall rule of the labs stays off the host's network. With --name, a second "
    "libvirt host on this machine (its own namespaces, libvirtd and sshd), to try several hosts.",
    no_args_is_help=True,
)


def _describe(state: hoststate.HostState) -> str:
    made = "created by labkit" if state.created_netns else "existing"
    daemons = ", ".join(f"{d.name} pid {d.pid}{'' if d.running else ' (not running)'}" for d in state.daemons)
    qemu = "; QEMU runs as root (/dev/kvm is root-only)" if state.qemu_as_root else ""
    return f"netns {state.netns} ({made}); {daemons or 'no daemons'}{qemu}"


NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="A second libvirt host on this machine, by name (e.g. h2), instead of host mode's libvirtd",
    ),
]


@app.command("up")
def up_cmd(
    netns: Annotated[
        str, typer.Option("--netns", help="Name of the network namespace to create and run libvirtd in")
    ] = host.DEFAULT_NETNS,
    name: NameOpt = None,
    peer_netns: Annotated[
        str | None,
        typer.Option(
            "--peer-netns",
            help="With --name: the network namespace to reach the host from (default: host mode's)",
        ),
    ] = None,
) -> None:
    """Create the network namespace, start virtlogd and libvirtd in it, and make the `default` storage pool.

    With --name NAME: a second host (netns labkit-NAME, its own libvirtd and sshd), and the URI to add."""
    if name is not None:
        if netns != host.DEFAULT_NETNS:
            raise UsageError(
                "--netns is host mode's; a second host's namespace is labkit-NAME", hint="drop --netns"
            )
        second_host.up(name, peer_netns)
        return
    if peer_netns is not None:
        raise UsageError("--peer-netns goes with --name (a second host)", hint="add --name NAME, or drop it")
    started = time.monotonic()
    state = host.host_up(netns)
    if state.already_up:
        typer.echo(f"host mode already up: {_describe(state)}")
    elif state.restarted is not None:
        typer.echo(
            f"libvirtd was not running: started it again in {time.monotonic() - started:.1f} s; it took back "
            f"{state.restarted} running VM(s): {_describe(state)}"
        )
    else:
        typer.echo(f"host mode up in {time.monotonic() - started:.1f} s: {_describe(state)}")


@app.command("down")
def down_cmd(
    force: Annotated[
        bool, typer.Option("--force", help="Destroy VMs still running instead of refusing")
    ] = False,
    name: NameOpt = None,
) -> None:
    """Stop the daemons `host up` started, delete its network namespace and forget the state."""
    if name is not None:
        second_host.down(name, force)
        return
    state = hoststate.host_state()
    if state is None:
        typer.echo("host mode is not up: nothing to do")
        return
    was = _describe(state)
    started = time.monotonic()
    host.host_down(force=force)
    typer.echo(f"host mode down in {time.monotonic() - started:.1f} s (stopped: {was})")


@app.command("status")
def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")] = False,
    name: NameOpt = None,
) -> None:
    """Say whether host mode is up, in which namespace, and whether its daemons still run."""
    if name is not None:
        second_host.status(name, as_json)
        return
    state = hoststate.host_state()
    other = processes.find_libvirtd()
    data: dict[str, Any] = {
        "up": state is not None and state.healthy,
        "state_file": str(hoststate.state_file()),
    }
    if state is not None:
        data.update(
            netns=state.netns,
            created_netns=state.created_netns,
            started_at=state.started_at,
            daemons=[{"name": d.name, "pid": d.pid, "running": d.running} for d in state.daemons],
        )
    elif other is not None:
        data["external_libvirtd_pid"] = other
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    if state is None:
        if other is not None:
            typer.echo(f"host mode is off; libvirtd pid {other} runs without it (host mode is not needed)")
        else:
            typer.echo("host mode is off (start it with `labkit host up`)")
    elif state.healthy:
        typer.echo(f"host mode up since {state.started_at}: {_describe(state)}")
    else:
        typer.echo(
            f"host mode is stale: {_describe(state)} (`labkit host up` starts libvirtd again, VMs kept)"
        )
