"""Chapter guides: every three-node stage renders in both languages with the lab's real values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from labkit.errors import LabkitError, UsageError
from labkit.kinds.compile import load_scenario
from labkit.kinds.guides import (
    checklist,
    default_language,
    guide_context,
    parse_checklist,
    render_guide,
)
from labkit.model.scenario import Scenario
from labkit.state import LabState, NodeState
from tests.unit.scenario_factory import scenario_data, write_scenario

LANGS = ("ja", "en")


@pytest.fixture(scope="module")
def three_node() -> Scenario:
    return load_scenario("three-node")


def lab_state(iface: str = "enp7s0", lab: str = "trainee1") -> LabState:
    return LabState(
        lab=lab,
        scenario="three-node",
        scenario_path="",
        accel="qemu",
        accel_reason="test",
        management_network="m",
        management_cidr="172.29.1.0/24",
        lab_network="l",
        created_at="now",
        nodes={
            name: NodeState(name=name, domain=f"labkit-{lab}-{name}", lab_iface=iface)
            for name in ("node1", "node2", "node3")
        },
    )


def test_every_stage_has_both_guides(three_node: Scenario) -> None:
    assert three_node.directory is not None
    for index, stage in enumerate(three_node.stages):
        for lang in LANGS:
            rel = getattr(stage.guide, lang)
            assert rel == f"guides/{lang}/{index:02d}-{stage.name}.md"
            assert (three_node.directory / rel).is_file()


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("with_state", [False, True])
def test_every_guide_renders_with_a_checklist(three_node: Scenario, lang: str, with_state: bool) -> None:
    state = lab_state() if with_state else None
    for stage in three_node.stages:
        text = render_guide(three_node, stage.name, lang, state)  # StrictUndefined: raises on a typo
        assert "{{" not in text and "{%" not in text, stage.name
        assert text.startswith("# "), stage.name
        assert len(checklist(three_node, stage.name, lang, state)) >= 4, stage.name
        heading = "## 理解度チェックリスト" if lang == "ja" else "## Checklist"
        assert heading in text


@pytest.mark.parametrize("lang", LANGS)
def test_flannel_guide_covers_the_seed(three_node: Scenario, lang: str) -> None:
    text = render_guide(three_node, "flannel", lang)
    for needle in (
        "--network-plugin=cni",
        "--cni-conf-dir=/etc/cni/net.d",
        "--cni-bin-dir=/opt/cni/bin",
        "/etc/flannel/flanneld.conf",
        "EnvironmentFile=/etc/flannel/flanneld.conf",
        "$FLANNEL_OPTS",
        "-etcd-endpoints=http://192.168.56.11:2379",
        "-iface=eth1",
        "flannel-io/flannel#977",
        "127.0.X.1",
        "ETCDCTL_API=2 etcdctl",
        "set /coreos.com/network/config",
        "response is invalid json",
        "--enable-v2=true",
        '"cniVersion": "0.3.1"',
        '"type": "flannel"',
        '"isDefaultGateway": true',
        "/etc/cni/net.d/flannel.conf",
        "systemctl restart flanneld",
        "systemctl status flanneld",
        "http://127.0.0.1:30080",
        "flannel0",
    ):
        assert needle in text, needle
    for plugin in ("flannel", "bridge", "host-local", "loopback", "portmap"):
        assert f"| `{plugin}` |" in text, plugin
    config = re.search(r"set /coreos.com/network/config '([^']+)'", text)
    assert config is not None
    assert json.loads(config.group(1)) == {
        "Network": "10.0.0.0/16",
        "SubnetLen": 24,
        "Backend": {"Type": "udp", "Port": 7890},
    }
    # the etcd endpoint is never written with a hostname
    assert "-etcd-endpoints=http://node1" not in text
    assert len(checklist(three_node, "flannel", lang)) >= 4


def test_flannel_checklist_asks_the_seed_questions(three_node: Scenario) -> None:
    en = checklist(three_node, "flannel", "en")
    ja = checklist(three_node, "flannel", "ja")
    assert len(en) == len(ja) >= 4
    joined_en, joined_ja = " ".join(en), " ".join(ja)
    assert "CNI" in joined_en and "CNI" in joined_ja
    assert "protocols" in joined_en and "プロトコル" in joined_ja
    for path in ("/etc/flannel/flanneld.conf", "/etc/cni/net.d/flannel.conf", "/coreos.com/network/config"):
        assert path in joined_en and path in joined_ja


def test_lab_state_fills_iface_and_lab_name(three_node: Scenario) -> None:
    text = render_guide(three_node, "flannel", "en", lab_state("enp7s0"))
    assert "-iface=enp7s0" in text and "-iface=eth1" not in text
    assert "labkit check flannel --name trainee1" in text
    assert "labkit ssh node1 --name trainee1" in render_guide(three_node, "ssh", "en", lab_state())
    assert "--name" not in render_guide(three_node, "ssh", "en", lab_state(lab="three-node")).split("sudo")[0]


def test_context_values(three_node: Scenario) -> None:
    ctx = guide_context(three_node)
    assert ctx["etcd_endpoint"] == "http://192.168.56.11:2379"
    assert ctx["apiserver_url"] == "http://192.168.56.11:8080"
    assert ctx["nodes"]["node2"]["ip"] == "192.168.56.12"
    assert ctx["lab_iface"] == "eth1" and ctx["nodes"]["node3"]["lab_iface"] == "eth1"
    assert (ctx["pod_network"], ctx["pod_subnet_len"]) == ("10.0.0.0/16", 24)
    assert ctx["backend"] == {"type": "udp", "port": 7890}
    assert (ctx["service_range"], ctx["cluster_dns"], ctx["kubernetes_service_ip"]) == (
        "10.32.0.0/24",
        "10.32.0.10",
        "10.32.0.1",
    )
    assert ctx["versions"]["kubernetes"] == "1.19.7"
    assert ctx["flannel_etcd_api"] == "2" and ctx["kubelet_cni_flags"] is True
    assert ctx["lab"] == "three-node" and ctx["lab_opt"] == ""
    assert [n["name"] for n in ctx["workers"]] == ["node1", "node2", "node3"]


def test_context_defaults_for_another_scenario(tmp_path: Path) -> None:
    data = scenario_data()
    del data["network"]["cluster_dns"]
    data["network"]["backend"] = {"type": "vxlan"}
    data["versions"].update(
        {"flannel": "0.22.0", "kubernetes": "1.28.2", "cni_plugins": "1.3.0", "flannel_cni_plugin": "1.2.0"}
    )
    ctx = guide_context(load_scenario(write_scenario(tmp_path, data)))
    assert ctx["cluster_dns"] == "10.32.0.10"
    assert ctx["backend"] == {"type": "vxlan", "port": 8472}
    assert json.loads(ctx["flannel_network_config"])["Backend"] == {"Type": "vxlan"}
    assert ctx["flannel_etcd_api"] == "3" and ctx["kubelet_cni_flags"] is False
    assert ctx["cni_version"] == "1.0.0"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "en"),
        ({"LANG": "ja_JP.UTF-8"}, "ja"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "C"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "ja_JP.UTF-8"}, "ja"),
        ({"LANG": "ja_JP.UTF-8", "LC_ALL": "C.UTF-8"}, "en"),
        ({"LC_ALL": "en_US.UTF-8", "LANGUAGE": "ja:en"}, "ja"),
        ({"LANGUAGE": "", "LANG": "ja_JP.eucJP"}, "ja"),
    ],
)
def test_default_language(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert default_language() == expected


def _scenario_with_guides(tmp_path: Path, guides: dict[str, str]) -> Scenario:
    data = scenario_data()
    data["stages"][0]["guide"] = {lang: f"guides/{lang}/00-etcd.md" for lang in guides}
    for lang, text in guides.items():
        path = tmp_path / "guides" / lang / "00-etcd.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return load_scenario(write_scenario(tmp_path, data))


def test_missing_language_falls_back_with_a_note(tmp_path: Path) -> None:
    scenario = _scenario_with_guides(
        tmp_path, {"ja": "# etcd\n\n{{ etcd_endpoint }}\n\n## 理解度チェックリスト\n\n- [ ] etcd とは？\n"}
    )
    text = render_guide(scenario, "etcd", "en")
    assert text.startswith("> Note: this chapter has no English guide yet")
    assert "http://192.168.56.11:2379" in text
    assert checklist(scenario, "etcd", "en") == ["etcd とは？"]
    assert not render_guide(scenario, "etcd", "ja").startswith(">")

    scenario = _scenario_with_guides(tmp_path / "en-only", {"en": "# etcd\n"})
    assert render_guide(scenario, "etcd", "ja").startswith("> 注: この章の日本語ガイドはまだありません")


def test_stage_without_any_guide(tmp_path: Path) -> None:
    scenario = _scenario_with_guides(tmp_path, {"ja": "# etcd\n"})
    with pytest.raises(UsageError, match="no guide"):
        render_guide(scenario, "flannel", "en")


def test_unknown_stage_lists_the_stages(three_node: Scenario) -> None:
    with pytest.raises(UsageError) as info:
        render_guide(three_node, "flanel", "en")
    assert info.value.hint is not None and "flannel" in info.value.hint and "kube-dns" in info.value.hint


def test_unknown_language(three_node: Scenario) -> None:
    with pytest.raises(UsageError, match="language"):
        render_guide(three_node, "flannel", "fr")


def test_undefined_variable_is_an_error(tmp_path: Path) -> None:
    scenario = _scenario_with_guides(tmp_path, {"en": "# etcd\n{{ etcd_endpont }}\n"})
    with pytest.raises(LabkitError, match="etcd_endpont") as info:
        render_guide(scenario, "etcd", "en")
    assert info.value.hint is not None and "etcd_endpoint" in info.value.hint


def test_template_syntax_error_names_the_line(tmp_path: Path) -> None:
    scenario = _scenario_with_guides(tmp_path, {"en": "# etcd\n\n{% if %}\n"})
    with pytest.raises(LabkitError, match=r"00-etcd.md:3"):
        render_guide(scenario, "etcd", "en")


def test_parse_checklist() -> None:
    text = """# Title

- [ ] not a checklist item (no checklist heading yet)

## Checklist

- [ ] first
* [x] second, already ticked

```
- [ ] inside a code block
```

### Details

- [ ] a sub-section still belongs to the checklist

## Next section

- [ ] not part of it
"""
    assert parse_checklist(text) == [
        "first",
        "second, already ticked",
        "a sub-section still belongs to the checklist",
    ]


def test_pod_subnets_are_the_nth_slice_per_node() -> None:
    ctx = guide_context(load_scenario("pod-routes"))
    node1, node2 = ctx["nodes"]["node1"], ctx["nodes"]["node2"]
    assert (node1["pod_subnet"], node1["pod_gateway"], node1["pod_ip"]) == (
        "10.244.1.0/24",
        "10.244.1.1",
        "10.244.1.10",
    )
    assert node2["pod_subnet"] == "10.244.2.0/24" and node2["pod_ip"] == "10.244.2.10"
    assert ctx["versions"]["kubernetes"] is None and ctx["flannel_etcd_api"] is None


def test_pod_subnets_absent_when_the_pod_network_has_no_nth_slice(tmp_path: Path) -> None:
    data = scenario_data()
    data["network"]["pods"] = "10.0.0.0/24"
    data["network"]["pod_subnet_len"] = 25  # two slices: .0/25 for index 0 (unused), .128/25 for node1
    ctx = guide_context(load_scenario(write_scenario(tmp_path, data)))
    assert ctx["nodes"]["node1"]["pod_subnet"] == "10.0.0.128/25"
    assert ctx["nodes"]["node2"]["pod_subnet"] is None
