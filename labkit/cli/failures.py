"""How the CLI words an exception that is not a LabkitError: one line with a fix and an exit code for an
error of the host or of a library labkit drives (libvirt, paramiko, the file system), and the internal-error
line for a bug in labkit."""

from __future__ import annotations

import errno
import os

from labkit.errors import HostError, LabError

INTERNAL_ERROR_EXIT = 70
"""Exit code of a bug in labkit (sysexits' EX_SOFTWARE): an exception that is not one labkit means."""


def internal_error_line(exc: BaseException) -> str:
    """The one line the CLI prints for an exception labkit did not mean to raise."""
    return (
        f"internal error: {type(exc).__name__}: {exc} "
        "(a bug in labkit; run again with --debug for the traceback and report it)"
    )


_OS_FIXES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: (
        "no space left on device writing {path}",
        "free space on that disk (df -h {where}) and run the command again",
    ),
    errno.EDQUOT: (
        "disk quota exceeded writing {path}",
        "free space within your quota (quota -s) and run the command again",
    ),
    errno.EROFS: (
        "read-only file system: cannot write {path}",
        "remount it read-write, or set LABKIT_HOME to a writable directory; then run the command again",
    ),
    errno.EACCES: (
        "permission denied on {path}",
        "run labkit as the user that owns it (labs built as root need sudo), or fix its permissions; "
        "then run the command again",
    ),
    errno.EPERM: (
        "operation not permitted on {path}",
        "run labkit as the user that owns it (labs built as root need sudo); then run the command again",
    ),
    errno.ENOENT: (
        "no such file or directory: {path}",
        "check that the file exists (a path given on the command line, in the scenario or in LABKIT_HOME); "
        "then run the command again",
    ),
}


def _os_error_line(exc: OSError) -> str:
    path = exc.filename if exc.filename is not None else "a file"
    if exc.filename2 is not None:
        path = f"{exc.filename} -> {exc.filename2}"
    known = _OS_FIXES.get(exc.errno or 0)
    if known is not None:
        where = (os.path.dirname(str(exc.filename)) or ".") if exc.filename is not None else "."
        message, fix = known
        return f"{message.format(path=path)}; fix: {fix.format(where=where)}"
    what = exc.strerror or str(exc) or type(exc).__name__
    on = f" ({path})" if exc.filename is not None else ""
    return (
        f"{what}{on}; fix: check the host (network, disks, permissions), then run the command again "
        "(--debug shows where it happened)"
    )


def _libvirt_line(exc: Exception) -> str:
    import libvirt

    detail = exc.get_error_message() if isinstance(exc, libvirt.libvirtError) else None
    detail = (detail or str(exc)).strip()
    code = exc.get_error_code() if isinstance(exc, libvirt.libvirtError) else None
    if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_AUTH_FAILED):
        return f"cannot reach libvirtd ({detail}); fix: labkit doctor / labkit host up"
    return f"libvirt: {detail}; fix: labkit doctor and labkit status show the host and the lab's VMs"


def host_error_line(exc: BaseException) -> tuple[str, int] | None:
    """One line with a fix, and the exit code, for an error of the host or of a library labkit drives (libvirt,
    paramiko, the file system) that reached the CLI; None for an exception that is a bug in labkit."""
    try:
        import libvirt
    except ImportError:  # pragma: no cover - libvirt-python is a dependency
        libvirt = None
    if libvirt is not None and isinstance(exc, libvirt.libvirtError):
        return _libvirt_line(exc), HostError.exit_code
    import paramiko

    if isinstance(exc, paramiko.AuthenticationException):
        return (
            f"SSH authentication to a node failed ({exc}); fix: `labkit status` names the lab's key; a lab "
            "directory restored from elsewhere needs its own ssh key back",
            LabError.exit_code,
        )
    if isinstance(exc, (paramiko.SSHException, EOFError)):
        return (
            f"SSH to a node failed ({type(exc).__name__}: {exc}); fix: `labkit status` (is the VM running and "
            "not paused?), then run the command again",
            LabError.exit_code,
        )
    if isinstance(exc, OSError):
        return _os_error_line(exc), HostError.exit_code
    return None
