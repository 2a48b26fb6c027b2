"""Pure logic of labkit.hostsetup.box: the definition's content hash, the box version scheme, apt source parsing."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest

from labkit import paths
from labkit.errors import UsageError
from labkit.hostsetup import box
from labkit.hostsetup.box import buildlog, old_versions, pool_volumes
from labkit.hostsetup.box.grub import grub_serial_setup


def _definition(root: Path) -> Path:
    (root / "files/etc/ssh/sshd_config.d").mkdir(parents=True)
    (root / "box.yaml").write_text("name: labkit/test\n")
    (root / "files/etc/ssh/sshd_config.d/10.conf").write_text("UseDNS no\n")
    (root / "files/usr/local/bin").mkdir(parents=True)
    (root / "files/usr/local/bin/hello").write_text("#!/bin/sh\necho hi\n")
    return root


def test_hash_is_stable_and_ignores_timestamps(tmp_path: Path) -> None:
    d = _definition(tmp_path / "d")
    first = box.content_hash(d)
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    os.utime(d / "box.yaml", (0, 0))
    assert box.content_hash(d) == first


def test_same_content_elsewhere_has_the_same_hash(tmp_path: Path) -> None:
    assert box.content_hash(_definition(tmp_path / "a")) == box.content_hash(_definition(tmp_path / "b"))


@pytest.mark.parametrize(
    "change",
    [
        lambda d: (d / "box.yaml").write_text("name: labkit/other\n"),
        lambda d: (d / "files/etc/new").write_text(""),
        lambda d: (d / "files/etc/ssh/sshd_config.d/10.conf").rename(
            d / "files/etc/ssh/sshd_config.d/20.conf"
        ),
        lambda d: os.chmod(d / "files/usr/local/bin/hello", 0o755),
        lambda d: (d / "files/etc/link").symlink_to("ssh"),
    ],
    ids=["content", "new-file", "rename", "exec-bit", "symlink"],
)
def test_hash_changes_with_the_definition(tmp_path: Path, change: object) -> None:
    d = _definition(tmp_path / "d")
    before = box.content_hash(d)
    change(d)  # type: ignore[operator]
    assert box.content_hash(d) != before


def test_hash_ignores_leftovers_and_empty_directories(tmp_path: Path) -> None:
    d = _definition(tmp_path / "d")
    before = box.content_hash(d)
    (d / "__pycache__").mkdir()
    (d / "__pycache__/x.pyc").write_bytes(b"\0")
    (d / "box.yaml~").write_text("backup")
    (d / "files/empty").mkdir()
    assert box.content_hash(d) == before


def test_hash_covers_the_builder_version(tmp_path: Path) -> None:
    d = _definition(tmp_path / "d")
    assert box.content_hash(d, builder_version=1) != box.content_hash(d, builder_version=2)
    assert box.content_hash(d) == box.content_hash(d, builder_version=box.BUILDER_VERSION)


def test_file_boundaries_count(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.mkdir()
    (a / "x").write_text("ab")
    (a / "y").write_text("c")
    b = tmp_path / "b"
    b.mkdir()
    (b / "x").write_text("a")
    (b / "y").write_text("bc")
    assert box.content_hash(a) != box.content_hash(b)


DIGEST = "00a1b2c3d4e5" + "f" * 52


def test_version_is_vagrant_compatible_and_carries_the_hash() -> None:
    when = dt.datetime(2025, 5, 20, 9, 30, 0, tzinfo=dt.UTC)
    version = box.box_version(DIGEST, when)
    assert re.fullmatch(r"\d+(\.\d+)*", version), "vagrant needs dotted integers"
    assert version == f"{box.BUILDER_VERSION}.20250520093000.{int('00a1b2c3d4e5', 16)}"
    assert box.version_hash_prefix(version) == "00a1b2c3d4e5"  # leading zeros survive
    assert box.version_matches(version, DIGEST)
    assert not box.version_matches(version, "1" + DIGEST[1:])


def test_versions_grow_with_build_time_whatever_the_hash() -> None:
    early = box.box_version("f" * 64, dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    late = box.box_version("0" * 64, dt.datetime(2025, 1, 1, 0, 0, 1, tzinfo=dt.UTC))
    assert box.version_sort_key(late) > box.version_sort_key(early)


def test_versions_use_utc() -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    local = dt.datetime(2025, 5, 20, 18, 30, tzinfo=tokyo)
    assert box.box_version(DIGEST, local) == box.box_version(DIGEST, local.astimezone(dt.UTC))
    assert ".20250520093000." in box.box_version(DIGEST, local)


@pytest.mark.parametrize("version", ["0", "1.2", "v1.2.3", "1.2.3.4", f"1.2.{16**12}"])
def test_foreign_versions_carry_no_hash(version: str) -> None:
    assert box.version_hash_prefix(version) is None


def test_shipped_definition_is_valid() -> None:
    directory = paths.boxes_dir() / box.DEFAULT_BOX
    definition = box.load_definition(directory)
    assert definition.name == "labkit/debian12"
    assert definition.vagrant_dir_name == "labkit-VAGRANTSLASH-debian12"
    for package in ("openssh-server", "sudo", "linux-image-cloud-amd64", "docker.io", "conntrack"):
        assert package in definition.packages
    assert {"docker.service", "containerd.service"} <= set(definition.disable_units)
    assert "net.ifnames=0" in definition.kernel_cmdline.split()
    assert box.content_hash(directory) == box.content_hash(directory)


def test_invalid_definition_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "box.yaml").write_text("name: labkit/x\nsuite: bookworm\npackages: ['a;rm -rf /']\n")
    with pytest.raises(UsageError, match=r"packages: .*not a plain package"):
        box.load_definition(tmp_path)


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://deb.debian.org/debian-security/
Suites: bookworm-security
Components: main contrib

Types: deb
Enabled: no
URIs: http://example.invalid/debian
Suites: bookworm
Components: main
"""


def test_deb822_sources() -> None:
    sources = box.parse_deb822_sources(DEB822)
    assert [s.uri for s in sources] == [
        "http://deb.debian.org/debian",
        "http://deb.debian.org/debian-security",
    ]
    assert sources[0].suites == ("bookworm", "bookworm-updates")
    assert sources[0].signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert sources[1].components == ("main", "contrib")


def test_one_line_sources() -> None:
    text = (
        "# comment\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib # x\n"
        "deb-src http://mirror.example/debian bookworm main\n"
    )
    (source,) = box.parse_one_line_sources(text)
    assert source == box.AptSource(
        "http://mirror.example/debian", ("bookworm",), ("main", "contrib"), "/k.gpg"
    )


def test_mirror_lines_take_the_suite_and_its_updates() -> None:
    sources = box.parse_deb822_sources(DEB822)
    lines = box.mirror_lines(sources, "bookworm", ["main"])
    assert lines == [
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian "
        "bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ]
    assert box.mirror_lines(sources, "trixie", ["main"]) == []


COMMAND_LST = (
    "*search: search\nsearch.fs_uuid: search_fs_uuid\n*menuentry: normal\nlinux: linux\ninitrd: linux\n"
)
MODDEP_LST = "search: extcmd search_fs_uuid\nlinux: normal boot\nnormal: boot\nsearch_fs_uuid:\n"
GRUB_CFG = (
    "set root=(hd0,msdos1)\nsearch --fs-uuid --set=root X\nmenuentry 'x' {\n\tlinux /v\n\tinitrd /i\n}\n"
)


def test_grub_commands_must_come_from_built_in_modules() -> None:
    assert box.grub_missing_commands([GRUB_CFG], ["search", "linux"], COMMAND_LST, MODDEP_LST) == []
    # search_fs_uuid only has search.fs_uuid: the box once waited at a grub> prompt for this
    missing = box.grub_missing_commands([GRUB_CFG], ["search_fs_uuid", "linux"], COMMAND_LST, MODDEP_LST)
    assert missing == ["search"]
    assert box.grub_missing_commands([GRUB_CFG], ["search"], COMMAND_LST, MODDEP_LST) == [
        "menuentry",
        "linux",
        "initrd",
    ]


def test_shipped_grub_modules_cover_the_builder_configs() -> None:
    grub = Path("/usr/lib/grub/i386-pc")
    if not (grub / "command.lst").is_file():
        pytest.skip("grub-pc-bin is not installed")
    definition = box.load_definition(paths.boxes_dir() / box.DEFAULT_BOX)
    configs = [grub_serial_setup() + GRUB_CFG]
    lists = ((grub / "command.lst").read_text(), (grub / "moddep.lst").read_text())
    assert box.grub_missing_commands(configs, definition.grub_modules, *lists) == []


def _vagrant_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    return paths.vagrant_home()


def test_versions_in_use_come_from_vagrants_machine_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _vagrant_home(tmp_path, monkeypatch) / "data/machine-index/index"
    index.parent.mkdir(parents=True)
    lab = tmp_path / "lab"
    lab.mkdir()

    def machine(version: str, vagrantfile_path: Path) -> dict[str, object]:
        box_data = {"name": "labkit/debian12", "provider": "libvirt", "version": version}
        return {"name": "node1", "vagrantfile_path": str(vagrantfile_path), "extra_data": {"box": box_data}}

    machines = {"a": machine("1.1.1", lab), "b": machine("1.2.2", tmp_path / "gone"), "c": {"name": "x"}}
    index.write_text(json.dumps({"version": 1, "machines": machines}))
    assert old_versions.versions_in_use("labkit/debian12") == {"1.1.1"}
    assert old_versions.versions_in_use("labkit/other") == set()


FAKE_VIRSH = """#!/bin/sh
echo "$@" >> "$VIRSH_CALLS"
shift  # -q
case "$1" in
  uri) echo test:///fake ;;
  pool-list) echo default ;;
  vol-list) printf ' %s %s\\n' old1 /p/old1 old2 /p/old2 lab-node1.img /p/lab-node1.img ;;
  vol-dumpxml)
    if [ "$4" = lab-node1.img ]; then echo '<volume><backingStore><path>/p/old2</path></backingStore></volume>';
    else echo '<volume/>'; fi ;;
  vol-delete) ;;
esac
"""


def test_old_pool_volumes_are_deleted_unless_a_vm_disk_backs_on_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    virsh = bin_dir / "virsh"
    virsh.write_text(FAKE_VIRSH)
    virsh.chmod(0o755)
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "test:///fake")
    monkeypatch.setenv("VIRSH_CALLS", str(calls))
    monkeypatch.setattr(pool_volumes, "box_volume_name", lambda _name, version: f"old{version}")
    definition = box.load_definition(paths.boxes_dir() / box.DEFAULT_BOX)
    log = buildlog.BuildLog(tmp_path / "build.log")
    notes: list[str] = []
    pool_volumes.delete_pool_volumes(log, definition, ["1", "2"], notes.append)
    log.close()
    deletes = [line for line in calls.read_text().splitlines() if "vol-delete" in line]
    assert deletes == ["-q vol-delete --pool default old1"]
    assert notes == [
        "deleted libvirt volume default/old1",
        "kept libvirt volume default/old2: a VM disk still backs on it",
    ]


def test_box_volume_name_matches_vagrant_libvirt() -> None:
    assert (
        box.box_volume_name("labkit/debian12", "1.2.3")
        == "labkit-VAGRANTSLASH-debian12_vagrant_box_image_1.2.3_box.img"
    )
