"""Fixtures for tests with real libvirt (marker ``vm``).

``libvirt_host`` (session) gives every VM test a libvirtd and puts the pytest process inside its network
namespace, so in-process Lab API calls, their threads and every subprocess (vagrant, ssh) reach the VMs while
the host's network stays untouched. In order of preference it uses:

1. a developer's own ``labkit host up`` (found via the default ``LABKIT_RUN_DIR``): entered, left running;
2. a libvirtd labkit did not start, or systemd's (a workstation): used as it is, yields None;
3. otherwise its own host mode: netns ``labkit-test-<pid>``, ``LABKIT_RUN_DIR`` in a temporary directory (set
   for the whole session, so ``labkit`` subprocesses find it too), torn down at the end with ``force``.

Only one libvirtd can run per host (fixed /run/libvirtd.pid and socket), hence no per-test daemons.
``LABKIT_HOME`` is left alone so the built box is shared with the developer's labs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.hostsetup.hostmode import enter_host_namespace, host_down, host_up
from labkit.hostsetup.hoststate import HostState, host_state
from labkit.hostsetup.processes import find_libvirtd
from labkit.machines.libvirt_host import libvirt_connect

from .artifact_server import ServedArtifacts, missing_binaries, serve_artifacts

_OWNED = pytest.StashKey[bool]()
_OUTER_NETNS_FD = pytest.StashKey[int]()


@pytest.fixture(scope="session")
def libvirt_host(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostState | None]:
    """A reachable libvirtd for the session; the HostState when host mode is in use, None on a workstation."""
    if os.geteuid() != 0:
        pytest.skip("VM tests need root (host mode creates a network namespace; libvirt qemu:///system)")
    if shutil.which("libvirtd") is None:
        pytest.skip("libvirtd is not installed (apt-get install libvirt-daemon-system)")
    stash = request.config.stash
    stash[_OWNED] = False
    # The network namespace pytest started in, for tests that look at the host's side.
    stash[_OUTER_NETNS_FD] = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        existing = host_state()
        if existing is not None and existing.healthy:
            enter_host_namespace()
            yield existing
            return
        if find_libvirtd() is not None or Path("/run/systemd/system").is_dir():
            libvirt_connect().close()  # under systemd this may socket-activate it; else says the fix
            yield None
            return
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LABKIT_RUN_DIR", str(tmp_path_factory.mktemp("labkit-run")))
            try:
                state = host_up(f"labkit-test-{os.getpid()}")
                stash[_OWNED] = True
                enter_host_namespace()
                yield state
            finally:
                host_down(force=True)
    finally:
        os.close(stash[_OUTER_NETNS_FD])


@pytest.fixture(scope="session")
def host_mode_owned(libvirt_host: HostState | None, request: pytest.FixtureRequest) -> bool:
    """True when ``libvirt_host`` started host mode itself (then tests may stop and restart it)."""
    return request.config.stash[_OWNED]


@pytest.fixture(scope="session")
def outer_netns_fd(libvirt_host: HostState | None, request: pytest.FixtureRequest) -> int:
    """An fd on the network namespace pytest started in (pass it to ``nsenter --net=/proc/self/fd/N``)."""
    return request.config.stash[_OUTER_NETNS_FD]


# ---- the shared three-node lab ----------------------------------------------------------------------------
# Booting three emulated VMs costs ~2.5 minutes: every vm test module shares one lab for the session. Tests
# marked `lab_teardown` (destroying it) run after all others.


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("lab_teardown") is not None)


@pytest.fixture(scope="session")
def three_node_up(libvirt_host: HostState | None) -> Iterator[tuple[Any, dict[str, Any], str]]:
    """(Lab, the JSON report of `labkit up three-node --name ci-three`, its progress output)."""
    import json
    import sys

    from labkit.lab import Lab, destroy_by_name

    from .lab_helpers import LAB, dump_lab_logs, labkit_cli

    destroy_by_name(LAB)  # leftovers of an interrupted earlier run
    result = labkit_cli("up", "three-node", "--name", LAB, "--json", check=False)
    try:
        if result.returncode != 0:
            dump_lab_logs(LAB)
            pytest.fail(f"labkit up failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        report = json.loads(result.stdout)
        print(f"\nlabkit up three-node: {report['seconds']} s, accel {report['accel']}", file=sys.stderr)
        yield Lab.load(LAB), report, result.stderr
    finally:
        destroy_by_name(LAB)


@pytest.fixture
def three_node_lab(three_node_up: tuple[Any, dict[str, Any], str]) -> Any:
    """The shared lab, loaded afresh (its state changes as tests reset and snapshot it)."""
    from labkit.lab import Lab

    return Lab.load(three_node_up[0].name)


@pytest.fixture(scope="session")
def second_host(libvirt_host: HostState | None) -> Iterator[str]:
    """A second libvirt host on this machine (`labkit host up --name ci-h2`: its own network and mount
    namespaces, libvirtd and sshd), in the pool as ci-h2; its URI. Started fresh (no earlier run's VMs), down
    and out of the pool at the end of the session, after the modules that used it destroyed their labs."""
    import re

    from labkit.hostsetup.second_host.layout import SecondHostPaths

    from .lab_helpers import labkit_cli
    from .second_hosts import H2, missing_tool, print_logs

    if missing_tool() is not None:
        pytest.skip(f"a second host needs {missing_tool()}")
    labkit_cli("host", "down", "--name", H2, check=False)
    labkit_cli("hosts", "remove", H2, check=False)
    shutil.rmtree(SecondHostPaths.for_host(H2).root, ignore_errors=True)
    up = labkit_cli("host", "up", "--name", H2, timeout=300)
    uri = re.search(r"its URI: (\S+)", up.stdout)
    assert uri is not None, up.stdout
    try:
        labkit_cli("hosts", "add", H2, uri.group(1))
        yield uri.group(1)
    finally:
        print_logs(SecondHostPaths.for_host(H2))
        labkit_cli("hosts", "remove", H2, check=False)
        labkit_cli("host", "down", "--name", H2, check=False, timeout=300)


@pytest.fixture(scope="module")
def served_cni(
    libvirt_host: HostState | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedArtifacts]:
    """cni-plugins 1.1.1 built from Debian's binaries, served, in the host cache for the module's duration
    (the pod-routes scenario's artifact)."""
    why = missing_binaries("cni-plugins", "1.1.1")
    if why is not None:
        pytest.skip(f"artifact cni-plugins: {why}")
    with serve_artifacts([("cni-plugins", "1.1.1")], tmp_path_factory.mktemp("artifacts")) as served:
        served.fetch()
        yield served
