"""What the tests of second hosts share: the tools they need, `labkit` run from "labkit's side" (a stand-in
network namespace of the test's own, with no view of the machine's libvirtd), and the host's daemon logs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from labkit.hostsetup.second_host.layout import SecondHostPaths

TOOLS = (
    "ip",
    "unshare",
    "nsenter",
    "libvirtd",
    "virtlogd",
    "sshd",
    "ssh",
    "ssh-keygen",
    "virsh",
    "virt-ssh-helper",
)
H2 = "ci-h2"
"""The second host VM tests share (`second_host` in conftest.py), in the pool under this name."""
LABKIT = [sys.executable, "-c", "from labkit.cli import main; main()"]
NO_MACHINE_LIBVIRT = 'mount -t tmpfs labkit-test /run/libvirt && exec "$@"'


def missing_tool(tools: tuple[str, ...] = TOOLS) -> str | None:
    for tool in tools:
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            return tool
    return None


def labkit(*args: str, side: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`labkit ARGS`; with ``side``, in the stand-in namespace with no view of the machine's libvirtd."""
    cmd = [*LABKIT, *args]
    if side is not None:
        cmd = ["ip", "netns", "exec", side, "unshare", "--mount", "--propagation", "private"]
        cmd += ["sh", "-c", NO_MACHINE_LIBVIRT, "sh", *LABKIT, *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    if check and result.returncode != 0:
        raise AssertionError(
            f"labkit {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def print_logs(paths: SecondHostPaths) -> None:
    """Shown by pytest only when the test failed."""
    for daemon in ("libvirtd", "virtlogd", "sshd"):
        log = paths.log(daemon)
        if log.exists():
            print(f"---- {log} (last 60 lines) ----")
            print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))
