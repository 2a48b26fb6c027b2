"""``labkit host up|down|status --name NAME``: a second libvirt host on this machine (called by labkit.cli.host)."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

import typer

from labkit.hostsetup import second_host as h2


def _describe(state: h2.SecondHostState, live: bool = True) -> str:
    """The host in one line; ``live``: say which daemons do not run (not for those ``down`` just stopped)."""
    daemons = ", ".join(
        f"{d.name} pid {d.pid}{' (not running)' if live and not d.running else ''}" for d in state.daemons
    )
    peer = state.peer_netns or "labkit's own network namespace"
    return (
        f"netns {state.netns}, address {state.address} (from {peer} via {state.peer_address}); "
        f"{daemons or 'no daemons'}"
    )


def up(name: str, peer_netns: str | None) -> None:
    started = time.monotonic()
    h2.check_second_host_name(name)  # before looking for a peer: a bad name is the first thing to say
    peer = peer_netns if peer_netns is not None else h2.default_peer()
    state = h2.second_host_up(name, peer)
    uri = h2.second_host_uri(state)
    if state.already_up:
        typer.echo(f"second host {name} already up: {_describe(state)}")
    elif state.restarted:
        typer.echo(
            f"second host {name}: started {', '.join(state.restarted)} again in "
            f"{time.monotonic() - started:.1f} s: {_describe(state)}"
        )
    else:
        typer.echo(f"second host {name} up in {time.monotonic() - started:.1f} s: {_describe(state)}")
    typer.echo(f"its URI: {uri}")
    typer.echo(f"add it to the pool: labkit hosts add {name} {shlex.quote(uri)}")


def down(name: str, force: bool) -> None:
    started = time.monotonic()
    state = h2.second_host_down(name, force=force)
    if state is None:
        typer.echo(f"second host {name} is not up: nothing to do")
        return
    typer.echo(
        f"second host {name} down in {time.monotonic() - started:.1f} s (stopped: {_describe(state, live=False)}; "
        f"removed netns {state.netns} and veth {h2.SecondHostPaths.for_host(name).peer_veth})"
    )


def status(name: str, as_json: bool) -> None:
    state = h2.second_host_status(name)
    paths = h2.SecondHostPaths.for_host(name)
    data: dict[str, Any] = {
        "name": name,
        "up": state is not None and state.healthy,
        "state_file": str(paths.state),
    }
    if state is not None:
        data.update(
            netns=state.netns,
            peer_netns=state.peer_netns,
            address=state.address,
            peer_address=state.peer_address,
            peer_veth=paths.peer_veth,
            uri=h2.second_host_uri(state),
            started_at=state.started_at,
            daemons=[{"name": d.name, "pid": d.pid, "running": d.running} for d in state.daemons],
            logs={d: str(paths.log(d)) for d in ("virtlogd", "libvirtd", "sshd")},
        )
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    elif state is None:
        typer.echo(f"second host {name} is not up (start it with `labkit host up --name {name}`)")
    elif state.healthy:
        typer.echo(f"second host {name} up since {state.started_at}: {_describe(state)}")
        typer.echo(f"its URI: {data['uri']}")
    else:
        typer.echo(
            f"second host {name} is stale: {_describe(state)} "
            f"(`labkit host up --name {name}` starts its daemons again)"
        )
