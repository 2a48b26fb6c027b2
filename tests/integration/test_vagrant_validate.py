"""Real `vagrant validate` (Debian's vagrant + vagrant-libvirt) accepts what `labkit render` writes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labkit.cli import app

pytestmark = [
    pytest.mark.vagrant,
    pytest.mark.skipif(
        shutil.which("vagrant") is None, reason="vagrant is not installed (scripts/setup-host)"
    ),
]


@pytest.mark.parametrize("accel", ["qemu", "kvm"])
def test_vagrant_validate_accepts_three_node(tmp_path: Path, accel: str) -> None:
    out = tmp_path / "lab"
    result = CliRunner().invoke(app, ["render", "three-node", "--out", str(out), "--accel", accel])
    assert result.exit_code == 0, result.output
    env = {**os.environ, "VAGRANT_HOME": str(tmp_path / "vagrant-home"), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    validate = subprocess.run(
        ["vagrant", "validate"], cwd=out, env=env, capture_output=True, text=True, timeout=300
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "Vagrantfile validated successfully" in validate.stdout
    status = subprocess.run(
        ["vagrant", "status", "--machine-readable"],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    machines = {line.split(",")[1] for line in status.stdout.splitlines() if ",state," in line}
    assert machines == {"node1", "node2", "node3"}


def test_vagrant_validate_accepts_a_lab_on_a_remote_host(tmp_path: Path) -> None:
    """The Vagrantfile of `labkit up --host`: a qemu+ssh URI and vagrant's SSH through the host."""
    from labkit.kinds.compile import load_scenario
    from labkit.lab.remote_up import vagrant_proxy_command
    from labkit.machines.host_ssh import HostSsh
    from labkit.machines.libvirt_host import LibvirtHost
    from labkit.machines.vagrantfile import RenderOptions, write_vagrantfile

    uri = "qemu+ssh://root@10.251.0.2/system?keyfile=/keys/h2&no_tty=1"
    host = LibvirtHost(name="h2", uri=uri, ssh=HostSsh("10.251.0.2", key_file=Path("/keys/h2")))
    options = RenderOptions(lab="r1", libvirt_uri=uri, ssh_proxy_command=vagrant_proxy_command(host))
    out = tmp_path / "lab"
    out.mkdir()
    write_vagrantfile(load_scenario("pod-routes"), options, out)
    env = {**os.environ, "VAGRANT_HOME": str(tmp_path / "vagrant-home"), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    validate = subprocess.run(
        ["vagrant", "validate"], cwd=out, env=env, capture_output=True, text=True, timeout=300
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "Vagrantfile validated successfully" in validate.stdout
