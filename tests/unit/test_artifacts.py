"""The artifact catalog and the pure parts of labkit.artifacts: entries, mirror mapping, version lookup."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from labkit import artifacts
from labkit.artifacts import Artifact, Catalog
from labkit.errors import HostError, UsageError
from labkit.model.scenario import Versions

CATALOG = artifacts.load_catalog()
HEX64 = re.compile(r"^[0-9a-f]{64}$")
COMMIT = re.compile(r"\b[0-9a-f]{40}\b")
K8S_DOWNLOADS = {"kubernetes-server", "kubelet", "kubectl"}

# Release download patterns from course.md.
URL_PATTERNS = {
    "kubernetes": "https://dl.k8s.io/release/v{v}/bin/linux/amd64/{name}",
    "etcd": "https://github.com/etcd-io/etcd/releases/download/v{v}/etcd-v{v}-linux-amd64.tar.gz",
    "flannel": "https://github.com/flannel-io/flannel/releases/download/v{v}/flanneld-amd64",
    "cni_plugins": "https://github.com/containernetworking/plugins/releases/download/v{v}/"
    "cni-plugins-linux-amd64-v{v}.tgz",
}

IDS = [a.key for a in CATALOG.artifacts]
REPO = Path(__file__).resolve().parents[2]


def _three_node_versions() -> Versions:
    """The course's versions, read from the scenario file alone (its stages are not this module's concern)."""
    data = yaml.safe_load((REPO / "scenarios" / "three-node" / "scenario.yaml").read_text())
    return Versions.model_validate(data["versions"])


def _entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "tool",
        "component": "etcd",
        "version": "1.2.3",
        "url": "https://example.invalid/tool",
        "sha256": "a" * 64,
        "source": "test",
        "unpack": "none",
        "install": [{"path": "/usr/local/bin/tool", "mode": "0755"}],
    }
    entry.update(overrides)
    return entry


def _catalog_file(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"artifacts": list(entries)}))
    return path


# ---- the shipped catalog ------------------------------------------------------------------------------------


@pytest.mark.parametrize("artifact", CATALOG.artifacts, ids=IDS)
def test_entry_is_well_formed(artifact: Artifact) -> None:
    if artifact.name == "kubernetes-server":
        pattern = f"https://dl.k8s.io/v{artifact.version}/kubernetes-server-linux-amd64.tar.gz"
    else:
        pattern = URL_PATTERNS[artifact.component].format(v=artifact.version, name=artifact.name)
    assert artifact.url == pattern
    assert artifact.source.strip()
    if artifact.pinned:
        assert COMMIT.search(artifact.source), "a pin cites the commit it was taken from"
    else:
        assert artifact.name == "flanneld" and artifact.trust == "first-use"  # nothing published
    for item in artifact.install:
        assert item.path.startswith(("/usr/local/bin/", "/opt/cni/bin/"))
        assert item.mode == 0o755


def test_only_flanneld_has_nothing_to_verify_against() -> None:
    unverifiable = [a.name for a in CATALOG.artifacts if not a.pinned]
    assert unverifiable == ["flanneld"]


def test_an_unpinned_entry_is_refused(tmp_path: Path) -> None:
    """A checksum fetched next to the download (through the same mirror) proves nothing: no such entry."""
    with pytest.raises(UsageError, match="invalid") as caught:
        artifacts.load_catalog(_catalog_file(tmp_path, _entry(sha256="")))
    assert "no pinned sha256 or sha512" in caught.value.message
    with pytest.raises(UsageError, match="invalid"):
        artifacts.load_catalog(_catalog_file(tmp_path, _entry(sha256_url="https://example.invalid/t.sha256")))
    first_use = artifacts.load_catalog(_catalog_file(tmp_path, _entry(sha256="", trust="first-use")))
    assert not first_use.artifacts[0].pinned


def test_known_pins() -> None:
    """The values as found in kubespray's checksum data (and the Nix pin for etcd 3.4.14)."""
    pins = {a.key: a.sha256 for a in CATALOG.artifacts}
    assert pins["kubelet/1.19.7"] == "d8b296825f6dd7a17287b73cd6604d32210abbba86c88fb68c1b1c5016906c54"
    assert pins["kubectl/1.19.7"] == "d46eb3bbe2575e5b6bedbc6d3519424b4f2f57929d7da1ef7e11c09068f37297"
    assert pins["cni-plugins/0.8.7"] == "977824932d5667c7a37aa6a3cbba40100a6873e7bd97e83e8be837e3e7afd0a8"
    assert pins["cni-plugins/1.1.1"] == "b275772da4026d2161bf8a8b41ed4786754c8a93ebfb6564006d5da7f23831e5"
    assert pins["etcd/3.4.14"] == "f57141d45ceb727a84e2f0bcd0b98934ea2ad2b59009be90d901710861601651"
    server = CATALOG.get("kubernetes-server", "1.19.7")
    assert server.sha512 == (
        "1164b701494072f7d33edb4489d4697ffc93107ef8389dfdfbc9ab524f636dcf"
        "948a5d36e676cd1f9502b26ad36a0e33700a94a2341a134b2304571c2f47aa89"
    )
    assert server.members == [
        f"kubernetes/server/bin/{name}"
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
    ]


def test_three_node_needs_the_whole_course() -> None:
    needed = artifacts.artifacts_for(_three_node_versions())
    names = {a.name for a in needed}
    assert names == K8S_DOWNLOADS | {"etcd", "flanneld", "cni-plugins"}
    etcd = CATALOG.get("etcd", "3.4.14")
    assert etcd.unpack == "tar"
    assert etcd.members == ["etcd-v3.4.14-linux-amd64/etcd", "etcd-v3.4.14-linux-amd64/etcdctl"]
    assert [i.path for i in etcd.install] == ["/usr/local/bin/etcd", "/usr/local/bin/etcdctl"]
    cni = CATALOG.get("cni-plugins", "0.8.7")
    assert cni.members == ["flannel", "bridge", "host-local", "loopback", "portmap"]
    assert all(i.path == f"/opt/cni/bin/{i.member}" for i in cni.install)
    assert CATALOG.get("flanneld").install[0].path == "/usr/local/bin/flanneld"


# ---- version lookup -----------------------------------------------------------------------------------------


def test_unknown_version_names_it_and_lists_known_ones() -> None:
    versions = Versions(kubernetes="1.19.7", etcd="3.5.0", flannel="0.13.0", cni_plugins="0.8.7")
    with pytest.raises(UsageError) as caught:
        artifacts.artifacts_for(versions)
    assert "etcd 3.5.0" in caught.value.message
    assert "known: 3.4.14" in caught.value.message
    assert caught.value.hint and "artifacts/catalog.yaml" in caught.value.hint


def test_every_unknown_version_is_reported_at_once() -> None:
    versions = Versions(kubernetes="1.30.0", etcd="3.5.0", flannel="0.13.0", cni_plugins="1.4.0")
    with pytest.raises(UsageError) as caught:
        artifacts.artifacts_for(versions)
    for text in ("kubernetes 1.30.0", "etcd 3.5.0", "cni_plugins 1.4.0", "known: 1.19.7", "known: 0.8.7"):
        assert text in caught.value.message
    assert "flannel 0.13.0" not in caught.value.message


def test_catalog_get() -> None:
    assert CATALOG.get("kubelet").version == "1.19.7"
    assert CATALOG.get("kubelet", "v1.19.7").name == "kubelet"
    with pytest.raises(UsageError, match=re.escape("no kubelet 1.20.0")):
        CATALOG.get("kubelet", "1.20.0")
    with pytest.raises(UsageError, match="no artifact 'kubeadm'"):
        CATALOG.get("kubeadm")


# ---- catalog validation -------------------------------------------------------------------------------------


def test_custom_catalog_file_loads(tmp_path: Path) -> None:
    catalog = artifacts.load_catalog(_catalog_file(tmp_path, _entry(version="v1.2.3")))
    tool = catalog.get("tool")
    assert tool.version == "1.2.3"
    assert tool.filename == "tool"
    assert tool.install[0].mode == 0o755
    assert catalog.path == tmp_path / "catalog.yaml"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"sha256": "abc"}, "not a sha256"),
        ({"url": "ftp://example.invalid/tool"}, "not an http"),
        ({"install": [{"member": "x", "path": "/usr/local/bin/tool"}]}, "names no member"),
        ({"unpack": "tar", "install": [{"path": "/usr/local/bin/tool"}]}, "needs a member"),
        ({"unpack": "tar", "install": [{"member": "../x", "path": "/x"}]}, "not a relative path"),
        ({"install": [{"path": "usr/local/bin/tool"}]}, "not an absolute file path"),
        ({"install": [{"path": "/usr/local/bin/tool", "mode": "rwx"}]}, "octal"),
        ({"component": "calico"}, "component"),
        ({"checksum": "x"}, "Extra inputs"),
        # the cache path is <name>/<version>/<filename>: a file name that decodes to a path is refused
        ({"url": "https://example.invalid/rel/%2e%2e%2f%2e%2e%2fetc%2fcron.d%2fx"}, "not a plain file name"),
        ({"url": "https://example.invalid/rel/%2e%2e"}, "not a plain file name"),
        ({"url": "https://example.invalid/rel/a%5cb"}, "not a plain file name"),
    ],
)
def test_bad_catalog_entries_are_refused(tmp_path: Path, overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(UsageError, match="invalid") as caught:
        artifacts.load_catalog(_catalog_file(tmp_path, _entry(**overrides)))
    assert expected in caught.value.message


def test_duplicate_entry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="listed twice"):
        artifacts.load_catalog(_catalog_file(tmp_path, _entry(), _entry()))


def test_tar_members_are_normalized() -> None:
    artifact = Artifact.model_validate(
        _entry(unpack="tar", install=[{"member": "./bridge", "path": "/opt/cni/bin/bridge"}])
    )
    assert artifact.members == ["bridge"]


# ---- mirror -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "mirror", "expected"),
    [
        (
            "https://dl.k8s.io/release/v1.19.7/bin/linux/amd64/kubelet",
            "http://10.0.0.5:8080",
            "http://10.0.0.5:8080/dl.k8s.io/release/v1.19.7/bin/linux/amd64/kubelet",
        ),
        (
            "https://github.com/etcd-io/etcd/releases/download/v3.4.14/etcd-v3.4.14-linux-amd64.tar.gz",
            "https://mirror.example.org/labkit/",
            "https://mirror.example.org/labkit/github.com/etcd-io/etcd/releases/download/v3.4.14/"
            "etcd-v3.4.14-linux-amd64.tar.gz",
        ),
        ("https://h.example:8443/a/b?x=1", "file:///srv/mirror", "file:///srv/mirror/h.example:8443/a/b?x=1"),
        ("https://dl.k8s.io/release/v1.19.7/x", None, "https://dl.k8s.io/release/v1.19.7/x"),
    ],
)
def test_mirror_mapping(url: str, mirror: str | None, expected: str) -> None:
    assert artifacts.mirror_url(url, mirror) == expected


@pytest.mark.parametrize("mirror", ["ftp://m.example", "m.example:8080", "http://", "http://m.example/?a=1"])
def test_bad_mirror_is_refused(mirror: str) -> None:
    with pytest.raises(UsageError, match="mirror"):
        artifacts.resolve_mirror(mirror)


def test_mirror_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(artifacts.MIRROR_ENV, raising=False)
    assert artifacts.resolve_mirror() is None
    assert artifacts.resolve_mirror(None, "http://scenario.example/") == "http://scenario.example"
    monkeypatch.setenv(artifacts.MIRROR_ENV, "http://env.example")
    assert artifacts.resolve_mirror(None, "http://scenario.example") == "http://env.example"
    assert artifacts.resolve_mirror("http://arg.example", "http://scenario.example") == "http://arg.example"
    assert artifacts.resolve_mirror("", "http://scenario.example") is None  # "" forces upstream


# ---- checksum files, lock file, missing ---------------------------------------------------------------------


def test_nothing_cached_in_a_fresh_home() -> None:
    versions = _three_node_versions()
    missing = artifacts.missing_artifacts(versions)
    assert {a.name for a in missing} == {a.name for a in artifacts.artifacts_for(versions)}
    error = artifacts.MissingArtifactsError(missing[:2], "three-node")
    assert "kubernetes-server 1.19.7" in error.message
    assert "https://dl.k8s.io/v1.19.7/kubernetes-server-linux-amd64.tar.gz" in error.message
    assert error.hint and "labkit artifacts fetch three-node" in error.hint
    assert "labkit artifacts import DIR" in error.hint
    assert error.exit_code == 3
    with pytest.raises(artifacts.MissingArtifactsError):
        artifacts.require_artifacts(versions, scenario="three-node")


def test_sha256_sources_before_anything_is_recorded() -> None:
    assert artifacts.sha256_source(CATALOG.get("kubelet")).startswith("pinned: kubespray")
    assert "trust on first use" in artifacts.sha256_source(CATALOG.get("flanneld"))
    assert artifacts.sha256_source(CATALOG.get("kubernetes-server")).startswith("pinned sha512: changelog")
    assert artifacts.expected_sha256(CATALOG.get("flanneld")) is None
    assert artifacts.lock_file().name == "artifacts.lock.json"


def test_a_malformed_lock_file_is_reported() -> None:
    artifacts.lock_file().parent.mkdir(parents=True, exist_ok=True)
    artifacts.lock_file().write_text("{")
    with pytest.raises(HostError, match="lock file"):
        artifacts.expected_sha256(CATALOG.get("flanneld"))


def test_extract_of_an_uncached_artifact_says_how_to_provide_it() -> None:
    with pytest.raises(artifacts.MissingArtifactsError, match=re.escape("etcd 3.4.14")):
        artifacts.extract(CATALOG.get("etcd"), "etcd-v3.4.14-linux-amd64/etcd")


# ---- CLI ----------------------------------------------------------------------------------------------------


def test_cli_list_json() -> None:
    from labkit.cli.artifacts import app

    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    rows = [r for r in listing if r["type"] == "artifact"]
    assert [(r["name"], r["version"]) for r in rows] == [(a.name, a.version) for a in CATALOG.artifacts]
    assert [(r["reference"], r["digest"]) for r in listing if r["type"] == "image"] == [
        (i.reference, i.digest) for i in CATALOG.images
    ]
    assert all(row["cached"] is False for row in listing)
    kubelet = next(r for r in rows if r["name"] == "kubelet")
    assert kubelet["sha256"] == CATALOG.get("kubelet").sha256
    assert kubelet["install"] == [{"member": None, "path": "/usr/local/bin/kubelet", "mode": "0755"}]


def test_cli_commands_have_help() -> None:
    from labkit.cli.artifacts import app

    group: Any = typer.main.get_command(app)
    assert set(group.commands) == {"list", "fetch", "import", "export"}
    for name, command in group.commands.items():
        assert command.help and len(command.help) > 30, name
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0


def test_catalog_object_is_accepted_directly() -> None:
    catalog = Catalog(artifacts=[CATALOG.get("kubelet")])
    versions = Versions(kubernetes="1.19.7", etcd="3.4.14", flannel="0.13.0", cni_plugins="0.8.7")
    with pytest.raises(UsageError, match=re.escape("etcd 3.4.14 (known: none)")):
        artifacts.artifacts_for(versions, catalog)
