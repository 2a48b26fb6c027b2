"""A one-node lab of its own (it is broken on purpose): `labkit up` interrupted, then power cuts.

- Interrupting `labkit up` while vagrant boots the VM stops vagrant's whole process group before labkit exits
  and releases the lab's lock; `up` again converges.
- A power cut (`virsh destroy`, what a host crash does) right after `up`, after a 0-byte host key, and right
  after a `solve`: `labkit up` boots the VM again and brings SSH, the lab IP and the solved stage back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from labkit.hostsetup.hoststate import HostState
from labkit.kinds.compile import load_scenario
from labkit.lab import Lab, destroy_by_name
from labkit.lock import lab_lock
from labkit.machines.domains import domain_state, lab_domains
from labkit.machines.libvirt_host import libvirt_connect
from labkit.paths import LabPaths

from .lab_helpers import labkit_cli

pytestmark = pytest.mark.vm

LAB = "ci-power"
NODE = "node1"
IP = "192.168.56.11"


@pytest.fixture(scope="module")
def scenario(libvirt_host: HostState | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """three-node cut down to one worker and its `cri` stage (no download, ~10 s to solve)."""
    source = load_scenario("three-node").source
    data = yaml.safe_load(Path(source).read_text())
    data["name"] = "power-cut"
    data["description"] = "one node, for power cuts"
    data["nodes"] = [{"name": NODE, "roles": ["worker"], "ip": IP, "cpus": 1, "memory": "1024M"}]
    cri = next(s for s in data["stages"] if s["name"] == "cri")
    cri.pop("guide", None)
    for item in cri["steps"] + cri["checks"]:
        item["on"] = item.pop(True, item.get("on"))  # YAML 1.1 reads the key `on` as true
    # the sandbox image cannot be fetched here (and test_images_vm covers loading one): Docker alone is enough
    # to see a solved stage survive a power cut
    cri["steps"] = [step for step in cri["steps"] if step["kind"] != "image"]
    data["stages"] = [cri]
    directory = tmp_path_factory.mktemp("power-cut")
    (directory / "scenario.yaml").write_text(yaml.safe_dump(data))
    destroy_by_name(LAB)
    yield directory / "scenario.yaml"
    destroy_by_name(LAB)


def _vagrant_processes(lab_dir: Path) -> list[str]:
    """Live processes (not zombies) working in the lab's directory: vagrant and whatever it started."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if Path(f"/proc/{entry.name}/cwd").resolve() != lab_dir.resolve():
                continue
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_text().replace("\0", " ")
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] not in "ZX":
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def _power_cut() -> None:
    dom = lab_domains(libvirt_connect(), LAB, [NODE])[NODE]
    dom.destroy()
    assert domain_state(dom) == "shut off"


def _up(scenario: Path) -> dict[str, Any]:
    started = time.monotonic()
    report = json.loads(labkit_cli("up", str(scenario), "--name", LAB, "--json", timeout=900).stdout)
    print(f"labkit up: {time.monotonic() - started:.0f} s, booted {report['booted']}")
    return report


def _assert_back(lab: Lab) -> None:
    assert lab.run(NODE, "hostname").stdout.strip() == NODE
    assert f" {IP}/24 " in lab.run(NODE, "ip -4 -o addr show").stdout
    assert lab.run(NODE, "sudo test -s /etc/ssh/ssh_host_ed25519_key").ok


def test_interrupted_up_leaves_no_vagrant_and_up_again_converges(scenario: Path) -> None:
    """Fault: SIGINT to the labkit process alone (not its group, so vagrant does not see it) a few seconds into
    vagrant's boot. Before the fix vagrant went on running, unlocked, after labkit had exited."""
    log = LabPaths.for_lab(LAB).log("vagrant-up")
    command = [
        sys.executable,
        "-c",
        "from labkit.cli import main; main()",
        "up",
        str(scenario),
        "--name",
        LAB,
    ]
    up = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (log.is_file() and "Starting domain" in log.read_text(errors="replace")):
        assert up.poll() is None and time.monotonic() < deadline, "vagrant never started the domain"
        time.sleep(0.2)
    time.sleep(3)
    up.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, stderr = up.communicate(timeout=300)
    print(
        f"interrupted up exited {up.returncode} after {time.monotonic() - started:.1f} s: {stderr.strip()[-300:]}"
    )
    assert up.returncode == 130, stderr
    assert "vagrant stopped" in stderr and f"--name {LAB}` resumes" in stderr
    assert _vagrant_processes(LabPaths.for_lab(LAB).root) == []
    with lab_lock(LabPaths.for_lab(LAB).lock, LAB, "test"):
        pass  # free
    _up(scenario)
    lab = Lab.load(LAB)
    _assert_back(lab)
    assert _up(scenario)["booted"] == []  # converged: a second up has nothing to boot


def test_power_cut_right_after_up(scenario: Path) -> None:
    lab = Lab.load(LAB)
    key = lab.run(NODE, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout
    _power_cut()
    assert _up(scenario)["booted"] == [NODE]
    _assert_back(lab)
    assert lab.run(NODE, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout == key, "the host key is kept"


def test_power_cut_with_an_empty_host_key(scenario: Path) -> None:
    """Fault: the reproduced brick, made on purpose: a 0-byte host key on disk, then a power cut. The box's unit
    skipped a key that exists, so sshd never started again and `up` waited on vagrant for ever."""
    lab = Lab.load(LAB)
    assert lab.run(
        NODE, "sudo sh -c ': > /etc/ssh/ssh_host_ed25519_key; : > /etc/ssh/ssh_host_ed25519_key.pub; sync'"
    ).ok
    _power_cut()
    # The VM comes back with a key made again from the empty one: a changed host key, which labkit refuses
    # (it cannot tell a lost key from another machine answering), saying what to do.
    refused = labkit_cli("up", str(scenario), "--name", LAB, "--json", check=False, timeout=900)
    assert refused.returncode != 0, refused.stdout
    assert "presented host key" in refused.stderr and f"remove the line for {NODE}" in refused.stderr, (
        refused.stderr
    )
    # what the message says: forget the old key, `labkit up` records the new one
    forget = ["ssh-keygen", "-R", NODE, "-f", str(lab.paths.known_hosts)]
    subprocess.run(forget, check=True, capture_output=True, timeout=60)
    _up(scenario)
    _assert_back(lab)
    assert lab.run(NODE, "sudo test -s /etc/ssh/ssh_host_ed25519_key.pub").ok


def test_power_cut_right_after_solve(scenario: Path) -> None:
    lab = Lab.load(LAB)
    labkit_cli("solve", "cri", "--name", LAB)
    _power_cut()  # at once: what the stage wrote (unit symlinks) must already be on disk
    _up(scenario)
    _assert_back(lab)
    enabled = lab.run(NODE, "systemctl is-enabled docker.service containerd.service")
    assert enabled.ok, enabled.stdout + enabled.stderr
    # the boot goes on after SSH answers: under emulation dockerd may still be starting (a minute or more)
    started = lab.run(
        NODE,
        "for i in $(seq 240); do systemctl is-active -q docker.service && exit 0; sleep 1; done; "
        "systemctl status docker.service containerd.service --no-pager -n 20; exit 1",
    )
    assert started.ok, started.stdout + started.stderr
    check = labkit_cli("check", "cri", "--name", LAB, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
