"""The three-node chapters 01 and 03-10 (without 09): every step builds and every template renders for every node
it runs on, with the values the guides show, and the files agree with each other (unit <-> conf, kubeconfig)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from labkit.artifacts import load_catalog
from labkit.kinds.checks import build as build_check
from labkit.kinds.checks import hint_text
from labkit.kinds.compile import build_for_nodes, load_scenario, validate_stage
from labkit.kinds.guides import guide_context, render_guide
from labkit.kinds.steps.artifact import ArtifactStep
from labkit.kinds.steps.base import StepContext
from labkit.kinds.steps.command import CommandStep
from labkit.kinds.steps.file import FileStep
from labkit.kinds.steps.systemd import SystemdStep
from labkit.kinds.templating import node_variables, render_args
from labkit.model.scenario import Scenario, Stage, Step

IMAGES = load_scenario("three-node").images.by_role()

OWNED = (
    "cri",
    "apiserver",
    "kubelet",
    "scheduler",
    "controller-manager",
    "node-config",
    "kube-proxy",
    "kube-dns",
)
COMPONENTS = ("kube-apiserver", "kubelet", "kube-scheduler", "kube-controller-manager", "kube-proxy")
CNI_FLAGS = ("--network-plugin=cni", "--cni-conf-dir=/etc/cni/net.d", "--cni-bin-dir=/opt/cni/bin")
IPS = {"node1": "192.168.56.11", "node2": "192.168.56.12", "node3": "192.168.56.13"}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario("three-node")


@pytest.fixture(scope="module")
def context(scenario: Scenario) -> dict[str, Any]:
    return guide_context(scenario)


def _step(scenario: Scenario, stage: str, name: str) -> Step:
    return next(s for s in scenario.stage(stage).steps if s.name == name)


def _built(scenario: Scenario, context: dict[str, Any], stage: str, name: str) -> dict[str, Any]:
    """node -> (built step, its StepContext) for one step, as the runner builds them."""
    st = scenario.stage(stage)
    step = _step(scenario, stage, name)
    nodes = [n.name for n in scenario.select(step.on)]
    out = {}
    for node, kind in zip(nodes, build_for_nodes(scenario, st, step, context), strict=True):
        variables = {**context, "node": node_variables(scenario, node, context)}
        out[node] = (kind, StepContext(node, variables, scenario.directory))
    return out


def _content(scenario: Scenario, context: dict[str, Any], stage: str, name: str, node: str) -> str:
    kind, ctx = _built(scenario, context, stage, name)[node]
    assert isinstance(kind, FileStep)
    return kind.content(ctx).decode()


def systemd_environment(text: str) -> dict[str, str]:
    """KEY=value pairs as systemd's EnvironmentFile= reads them (the subset the course uses: comments,
    double quotes, backslash-newline continuations; a raw newline inside quotes stays in the value)."""
    env: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if text[i] in "#;":
            i = text.find("\n", i)
            i = n if i < 0 else i
            continue
        eq = text.find("=", i)
        key = text[i:eq].strip()
        i = eq + 1
        value: list[str] = []
        if i < n and text[i] == '"':
            i += 1
            while text[i] != '"':
                if text[i] == "\\":
                    if text[i + 1] != "\n":
                        value.append(text[i + 1] if text[i + 1] in '"\\`$' else "\\" + text[i + 1])
                    i += 2
                    continue
                value.append(text[i])
                i += 1
            i += 1
        else:
            end = text.find("\n", i)
            end = n if end < 0 else end
            value.append(text[i:end].strip())
            i = end
        env[key] = "".join(value)
    return env


def kube_opts(conf: str) -> list[str]:
    """The arguments `ExecStart=... $KUBE_OPTS` passes: the value split at whitespace."""
    env = systemd_environment(conf)
    assert list(env) == ["KUBE_OPTS"], env
    return env["KUBE_OPTS"].split()


def flags(conf: str) -> dict[str, str]:
    args = kube_opts(conf)
    assert all(a.startswith("--") and "=" in a for a in args), args
    names = [a.split("=", 1)[0] for a in args]
    assert len(names) == len(set(names)), f"a flag is given twice: {names}"
    return dict(a.split("=", 1) for a in args)


# ---- the whole of each stage ------------------------------------------------------------------------------


def test_owned_stages_have_steps_and_checks_with_hints_in_both_languages(scenario: Scenario) -> None:
    for name in OWNED:
        stage = scenario.stage(name)
        assert stage.steps and stage.checks, name
        for check in stage.checks:
            assert not isinstance(check.hint, str) and check.hint is not None, (name, check.name)
            assert check.hint.en and check.hint.ja, (name, check.name)
        names = [s.name for s in stage.steps]
        assert len(names) == len(set(names)), name
        assert len({c.name for c in stage.checks}) == len(stage.checks), name


def test_every_step_builds_and_every_template_renders_on_every_node(
    scenario: Scenario, context: dict[str, Any]
) -> None:
    for stage in scenario.stages:
        validate_stage(scenario, stage, context)  # args rendered per node, StrictUndefined
        for step in stage.steps:
            for node, (kind, ctx) in _built(scenario, context, stage.name, step.name).items():
                if isinstance(kind, FileStep):
                    text = kind.content(ctx).decode()
                    assert "{{" not in text and "{%" not in text, (stage.name, step.name, node)


def test_every_check_builds_for_every_node_and_its_hints_render(
    scenario: Scenario, context: dict[str, Any]
) -> None:
    for name in OWNED:
        stage = scenario.stage(name)
        for check in stage.checks:
            build_check(stage, check)
            for node in scenario.select(check.on):
                variables = {**context, "node": node_variables(scenario, node.name, context)}
                build_check(stage, check, render_args(check.args, variables, check.name))
                for lang in ("en", "ja"):
                    hint = render_args(hint_text(check.hint, lang), variables, check.name)
                    assert hint and "{{" not in hint and "{%" not in hint, (name, check.name, lang)


def _owned_steps(scenario: Scenario) -> list[tuple[Stage, Step]]:
    return [(scenario.stage(name), step) for name in OWNED for step in scenario.stage(name).steps]


def test_every_command_is_guarded(scenario: Scenario) -> None:
    for stage, step in _owned_steps(scenario):
        if step.kind == "command":
            assert step.args.get("creates") or step.args.get("unless"), (stage.name, step.name)


def test_every_restart_is_followed_by_a_wait_on_the_same_nodes(scenario: Scenario) -> None:
    for name in OWNED:
        steps = scenario.stage(name).steps
        for index, step in enumerate(steps):
            if step.kind == "systemd" and step.args.get("state") in ("started", "restarted"):
                if step.args["unit"] in ("containerd.service", "docker.socket"):
                    continue  # docker.service comes next, then the wait
                wait = steps[index + 1]
                assert wait.kind == "command" and "unless" in wait.args, (name, step.name)
                assert wait.on == step.on, (name, step.name, wait.name)


def test_kubectl_is_always_given_its_kubeconfig(scenario: Scenario) -> None:
    """Steps and checks run through `sudo sh -c`: no reliance on HOME finding ~/.kube/config."""
    texts = []
    for name in OWNED:
        stage = scenario.stage(name)
        for action in [*stage.steps, *stage.checks]:
            texts += [v for v in action.args.values() if isinstance(v, str)]
    calls = [t[m.start() : m.start() + 60] for t in texts for m in re.finditer(r"\bkubectl ", t)]
    assert len(calls) > 20
    for call in calls:
        assert call.startswith(
            ("kubectl --kubeconfig {{ kubeconfig }} ", "kubectl --kubeconfig /root/.kube/config")
        ), call


def test_binaries_come_from_the_catalog(scenario: Scenario, context: dict[str, Any]) -> None:
    catalog = load_catalog()
    server = "kubernetes-server"  # the four binaries kubespray does not pin, from the sha512-pinned tarball
    wanted = {
        ("apiserver", "apiserver-binary"): (server, "kubernetes/server/bin/kube-apiserver"),
        ("apiserver", "kubectl-binary"): ("kubectl", None),
        ("kubelet", "kubelet-binary"): ("kubelet", None),
        ("scheduler", "scheduler-binary"): (server, "kubernetes/server/bin/kube-scheduler"),
        ("controller-manager", "controller-manager-binary"): (
            server,
            "kubernetes/server/bin/kube-controller-manager",
        ),
        ("node-config", "kubelet-binary"): ("kubelet", None),
        ("kube-proxy", "kube-proxy-binary"): (server, "kubernetes/server/bin/kube-proxy"),
    }
    for (stage, step), (artifact, member) in wanted.items():
        for kind, ctx in _built(scenario, context, stage, step).values():
            assert isinstance(kind, ArtifactStep) and (kind.args.name, kind.args.member) == (artifact, member)
            assert kind._scenario_version(catalog, ctx) == "1.19.7"
            if member is not None:
                assert member in catalog.get(artifact, "1.19.7").members
    kubectl_nodes = list(_built(scenario, context, "apiserver", "kubectl-binary"))
    assert kubectl_nodes == ["node1", "node2", "node3"]


# ---- units and their conf files ---------------------------------------------------------------------------

UNITS = {
    # component: (stage, unit step, conf step)
    "kube-apiserver": ("apiserver", "apiserver-unit", "apiserver-conf"),
    "kubelet": ("kubelet", "kubelet-unit", "kubelet-conf"),
    "kube-scheduler": ("scheduler", "scheduler-unit", "scheduler-conf"),
    "kube-controller-manager": ("controller-manager", "controller-manager-unit", "controller-manager-conf"),
    "kube-proxy": ("kube-proxy", "kube-proxy-unit", "kube-proxy-conf"),
}


@pytest.mark.parametrize("component", COMPONENTS)
def test_unit_reads_its_conf_and_runs_the_catalog_binary(
    scenario: Scenario, context: dict[str, Any], component: str
) -> None:
    stage, unit_step, conf_step = UNITS[component]
    for node, (unit, ctx) in _built(scenario, context, stage, unit_step).items():
        conf, _ = _built(scenario, context, stage, conf_step)[node]
        assert isinstance(unit, FileStep) and isinstance(conf, FileStep)
        assert unit.args.path == f"/usr/local/lib/systemd/system/{component}.service"
        assert conf.args.path == f"/etc/kubernetes/{component}.conf"
        text = unit.content(ctx).decode()
        assert f"EnvironmentFile={conf.args.path}\n" in text
        assert f"ExecStart=/usr/local/bin/{component} $KUBE_OPTS\n" in text
        assert "WantedBy=multi-user.target" in text and "Restart=always" in text
    catalog = load_catalog()
    installed = [
        item.path for name in ("kubernetes-server", "kubelet") for item in catalog.get(name, "1.19.7").install
    ]
    assert f"/usr/local/bin/{component}" in installed
    service = next(s for s in scenario.stage(stage).steps if s.args.get("unit") == f"{component}.service")
    assert service.kind == "systemd"
    assert {unit_step, conf_step} <= set(service.args["restart_on"])
    assert service.args["enabled"] is True and service.args["state"] == "restarted"


def test_the_guides_show_the_same_unit_and_conf_paths(scenario: Scenario) -> None:
    for component, (stage, _, _) in UNITS.items():
        for lang in ("en", "ja"):
            text = render_guide(scenario, stage, lang)
            assert f"/usr/local/lib/systemd/system/{component}.service" in text
            assert f"EnvironmentFile=/etc/kubernetes/{component}.conf" in text
            assert f"ExecStart=/usr/local/bin/{component} $KUBE_OPTS" in text


def test_no_component_file_is_left_outside_the_course_paths(scenario: Scenario) -> None:
    """The course keeps every conf in /etc/kubernetes and every unit in /usr/local/lib/systemd/system."""
    assert scenario.directory is not None
    old = re.compile(r"/etc/(kubelet|kube-[a-z-]+)/|/etc/systemd/system/")
    for path in sorted(scenario.directory.rglob("*")):
        if path.is_file():
            found = old.findall(path.read_text())
            assert not found, f"{path.relative_to(scenario.directory)} still names {found}"


def test_apiserver_conf(scenario: Scenario, context: dict[str, Any]) -> None:
    assert list(_built(scenario, context, "apiserver", "apiserver-conf")) == ["node1"]
    opts = flags(_content(scenario, context, "apiserver", "apiserver-conf", "node1"))
    assert opts == {
        "--etcd-servers": "http://192.168.56.11:2379",
        "--insecure-bind-address": "0.0.0.0",
        "--insecure-port": "8080",
        "--advertise-address": "192.168.56.11",
        "--service-cluster-ip-range": "10.32.0.0/24",
    }


def test_chapter_06_gives_the_apiserver_the_service_account_key(
    scenario: Scenario, context: dict[str, Any]
) -> None:
    key = _step(scenario, "controller-manager", "service-account-key")
    assert key.kind == "command" and key.args["creates"] == "/etc/kubernetes/sa.key"
    assert "openssl genrsa -out /etc/kubernetes/sa.key 2048" in key.args["run"]
    conf_step = _step(scenario, "controller-manager", "apiserver-sa-conf")
    assert conf_step.args["path"] == _step(scenario, "apiserver", "apiserver-conf").args["path"]
    assert conf_step.args["template"] == _step(scenario, "apiserver", "apiserver-conf").args["template"]
    opts = flags(_content(scenario, context, "controller-manager", "apiserver-sa-conf", "node1"))
    assert opts["--service-account-key-file"] == "/etc/kubernetes/sa.key"
    assert opts["--etcd-servers"] == "http://192.168.56.11:2379"
    restart = _step(scenario, "controller-manager", "apiserver-restart")
    assert restart.args["unit"] == "kube-apiserver.service"
    assert set(restart.args["restart_on"]) == {"service-account-key", "apiserver-sa-conf"}
    cm = flags(_content(scenario, context, "controller-manager", "controller-manager-conf", "node1"))
    assert cm == {
        "--master": "http://192.168.56.11:8080",
        "--kubeconfig": "/etc/kubernetes/kubeconfig",
        "--service-account-private-key-file": "/etc/kubernetes/sa.key",
        "--bind-address": "127.0.0.1",
    }


def test_scheduler_conf(scenario: Scenario, context: dict[str, Any]) -> None:
    opts = flags(_content(scenario, context, "scheduler", "scheduler-conf", "node1"))
    assert opts == {"--kubeconfig": "/etc/kubernetes/kubeconfig", "--bind-address": "127.0.0.1"}


@pytest.mark.parametrize("stage", ["kubelet", "node-config"])
def test_kubelet_conf_per_node(scenario: Scenario, context: dict[str, Any], stage: str) -> None:
    built = _built(scenario, context, stage, "kubelet-conf")
    assert list(built) == (["node1"] if stage == "kubelet" else ["node1", "node2", "node3"])
    for node in built:
        text = _content(scenario, context, stage, "kubelet-conf", node)
        opts = flags(text)
        assert opts == {
            "--kubeconfig": "/etc/kubernetes/kubeconfig",
            "--container-runtime": "docker",
            "--cgroup-driver": "cgroupfs",
            "--hostname-override": node,
            "--node-ip": IPS[node],
            "--cluster-dns": "10.32.0.10",
            "--cluster-domain": "cluster.local",
            "--pod-infra-container-image": IMAGES["pause"],
            "--fail-swap-on": "false",
        }
        assert "--network-plugin" not in text


def test_kubelet_conf_has_the_cni_toggle_for_the_flannel_stage(
    scenario: Scenario, context: dict[str, Any]
) -> None:
    assert scenario.directory is not None
    template = (scenario.directory / "templates/kubelet/kubelet.conf.j2").read_text()
    toggle = (
        "{% if cni | default(false) and kubelet_cni_flags %}\n"
        "--network-plugin=cni \\\n"
        "--cni-conf-dir={{ cni_conf_dir }} \\\n"
        "--cni-bin-dir={{ cni_bin_dir }} \\\n"
        "{% endif %}\n"
    )
    assert toggle in template
    kind, ctx = _built(scenario, context, "node-config", "kubelet-conf")["node2"]
    assert isinstance(kind, FileStep)
    plain = flags(kind.content(ctx).decode())
    with_cni = flags(_render_with(kind, ctx, cni=True))
    assert {k: v for k, v in with_cni.items() if k not in plain} == dict(f.split("=") for f in CNI_FLAGS)
    assert {k: with_cni[k] for k in plain} == plain
    # Kubernetes >= 1.24 (kubelet_cni_flags False): the toggle adds nothing
    no_flags = StepContext(ctx.node, {**ctx.vars, "kubelet_cni_flags": False}, ctx.scenario_dir)
    assert flags(_render_with(kind, no_flags, cni=True)) == plain


def _render_with(kind: FileStep, ctx: StepContext, **extra: Any) -> str:
    variables = StepContext(ctx.node, {**ctx.vars, **extra}, ctx.scenario_dir)
    return kind.content(variables).decode()


def test_flannel_stage_rerenders_this_kubelet_conf(scenario: Scenario, context: dict[str, Any]) -> None:
    """The flannel stage's kubelet-cni-flags step writes the same file from the same template, with the flags."""
    theirs = next((s for s in scenario.stage("flannel").steps if s.name == "kubelet-cni-flags"), None)
    if theirs is None:
        pytest.skip("the flannel stage has no kubelet-cni-flags step")
    ours = _step(scenario, "node-config", "kubelet-conf")
    assert theirs.args["path"] == ours.args["path"] and theirs.args["template"] == ours.args["template"]
    text = _content(scenario, context, "flannel", "kubelet-cni-flags", "node3")
    opts = flags(text)
    assert opts["--node-ip"] == "192.168.56.13" and opts["--network-plugin"] == "cni"


def test_kube_proxy_conf_is_the_same_on_every_node(scenario: Scenario, context: dict[str, Any]) -> None:
    built = _built(scenario, context, "kube-proxy", "kube-proxy-conf")
    assert list(built) == ["node1", "node2", "node3"]
    confs = {_content(scenario, context, "kube-proxy", "kube-proxy-conf", node) for node in built}
    assert len(confs) == 1
    assert flags(confs.pop()) == {
        "--kubeconfig": "/etc/kubernetes/kubeconfig",
        "--proxy-mode": "iptables",
        "--cluster-cidr": "10.0.0.0/16",
    }


def test_kubeconfig_points_at_the_insecure_apiserver(scenario: Scenario, context: dict[str, Any]) -> None:
    files = [
        ("apiserver", "kubeconfig", "node1", "/etc/kubernetes/kubeconfig"),
        ("apiserver", "kubectl-config", "node1", "/root/.kube/config"),
        ("node-config", "kubeconfig", "node2", "/etc/kubernetes/kubeconfig"),
        ("node-config", "kubeconfig", "node3", "/etc/kubernetes/kubeconfig"),
    ]
    texts = set()
    for stage, step, node, path in files:
        kind, _ = _built(scenario, context, stage, step)[node]
        assert isinstance(kind, FileStep) and kind.args.path == path
        texts.add(_content(scenario, context, stage, step, node))
    assert len(texts) == 1, "one kubeconfig for kubectl and every component"
    config = yaml.safe_load(texts.pop())
    assert config["kind"] == "Config"
    assert config["clusters"] == [{"name": "three-node", "cluster": {"server": "http://192.168.56.11:8080"}}]
    assert config["current-context"] == "three-node"
    assert config["users"] == [{"name": "admin", "user": {}}]


# ---- chapter 01 ----------------------------------------------------------------------------------------------


def test_cri_enables_and_starts_docker_and_containerd_on_every_node(
    scenario: Scenario, context: dict[str, Any]
) -> None:
    units = {}
    for step in scenario.stage("cri").steps:
        for kind, _ in _built(scenario, context, "cri", step.name).values():
            if isinstance(kind, SystemdStep):
                units[kind.args.unit] = (kind.args.enabled, kind.args.state)
        assert [n.name for n in scenario.select(step.on)] == ["node1", "node2", "node3"]
    assert units == {
        "containerd.service": (True, "started"),
        "docker.socket": (True, "started"),
        "docker.service": (True, "started"),
    }
    wait = _step(scenario, "cri", "docker-ready")
    assert "docker info" in wait.args["unless"]
    checks = {c.name: c for c in scenario.stage("cri").checks}
    assert (
        checks["docker-stable"].kind == "service" and checks["docker-stable"].args["unit"] == "docker.service"
    )
    assert (
        checks["docker-answers"].kind == "command" and "docker info" in checks["docker-answers"].args["run"]
    )


# ---- manifests -------------------------------------------------------------------------------------------------


def _manifests(scenario: Scenario, context: dict[str, Any], stage: str, step: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(_content(scenario, context, stage, step, "node1")) if d]


def test_pod_manifests(scenario: Scenario, context: dict[str, Any]) -> None:
    (pinned,) = _manifests(scenario, context, "kubelet", "pinned-pod-manifest")
    assert pinned["metadata"]["name"] == "pinned"
    assert pinned["spec"]["nodeName"] == "node1"
    assert pinned["spec"]["automountServiceAccountToken"] is False
    assert pinned["spec"]["containers"][0]["image"] == IMAGES["web"]
    (unpinned,) = _manifests(scenario, context, "scheduler", "unpinned-pod-manifest")
    assert unpinned["metadata"]["name"] == "unpinned" and "nodeName" not in unpinned["spec"]
    for stage, manifest, apply in (
        ("kubelet", "pinned-pod-manifest", "pinned-pod"),
        ("scheduler", "unpinned-pod-manifest", "unpinned-pod"),
        ("controller-manager", "hello-world-manifest", "hello-world"),
        ("kube-proxy", "hello-world-service-manifest", "hello-world-service"),
        ("kube-dns", "dns-manifest", "dns"),
    ):
        path = _step(scenario, stage, manifest).args["path"]
        command = _step(scenario, stage, apply)
        assert command.kind == "command" and f"apply -f {path}" in command.args["run"], (stage, apply)
        assert command.args["unless"].startswith("kubectl --kubeconfig"), (stage, apply)


def test_hello_world_deployment_and_nodeport(scenario: Scenario, context: dict[str, Any]) -> None:
    (deployment,) = _manifests(scenario, context, "controller-manager", "hello-world-manifest")
    assert deployment["kind"] == "Deployment" and deployment["metadata"]["name"] == "hello-world"
    assert deployment["spec"]["replicas"] == 3
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels == deployment["spec"]["selector"]["matchLabels"] == {"app": "hello-world"}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGES["web"]
    (service,) = _manifests(scenario, context, "kube-proxy", "hello-world-service-manifest")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["selector"] == labels
    assert service["spec"]["ports"] == [{"port": 80, "targetPort": 8080, "nodePort": 30080}]
    scale = _step(scenario, "node-config", "hello-world-scale")
    kind, _ = _built(scenario, context, "node-config", "hello-world-scale")["node1"]
    assert isinstance(kind, CommandStep) and kind.args.run.endswith("--replicas=6")
    assert scale.on == ["apiserver"]
    check = next(c for c in scenario.stage("kube-proxy").checks if c.name == "nodeport-answers")
    rendered = render_args(check.args, {**context, "node": node_variables(scenario, "node2", context)})
    assert rendered["url"] == "http://192.168.56.12:30080/"
    assert re.search(rendered["pattern"], "Hello, world!\nHostname: hello-world-5d4f6c-x2x9q\n")


def test_dns_manifest(scenario: Scenario, context: dict[str, Any]) -> None:
    docs = {d["kind"]: d for d in _manifests(scenario, context, "kube-dns", "dns-manifest")}
    assert set(docs) == {"ConfigMap", "Deployment", "Service"}
    assert docs["Service"]["metadata"] == {
        "name": "kube-dns",
        "namespace": "kube-system",
        "labels": {"k8s-app": "kube-dns"},
    }
    assert docs["Service"]["spec"]["clusterIP"] == "10.32.0.10"
    corefile = docs["ConfigMap"]["data"]["Corefile"]
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in corefile
    assert "endpoint http://192.168.56.11:8080" in corefile
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == IMAGES["dns"] and pod["dnsPolicy"] == "Default"
    test_pod = _step(scenario, "kube-dns", "dnstest-pod").args["run"]
    assert "run dnstest --image={{ images.client }}" in test_pod


def test_scheduler_stage_lifts_the_not_ready_taint_before_the_unpinned_pod(
    scenario: Scenario, context: dict[str, Any]
) -> None:
    """Kubernetes 1.19 taints every new node not-ready:NoSchedule; without the controller-manager (chapter 06)
    nothing lifts it, and the scheduler would leave the unpinned pod Pending."""
    names = [s.name for s in scenario.stage("scheduler").steps]
    assert names.index("scheduler-ready") < names.index("not-ready-taint") < names.index("unpinned-pod")
    ((kind, _),) = _built(scenario, context, "scheduler", "not-ready-taint").values()
    assert isinstance(kind, CommandStep)
    assert kind.args.run.endswith("taint node node1 node.kubernetes.io/not-ready:NoSchedule-")
    for lang in ("en", "ja"):
        assert "kubectl taint node node1 node.kubernetes.io/not-ready:NoSchedule-" in render_guide(
            scenario, "scheduler", lang
        )
    # chapter 07 waits for the taint to go from the new nodes before it scales out
    ready = _step(scenario, "node-config", "kubelet-ready")
    assert (
        "node.kubernetes.io/not-ready" in ready.args["run"]
        and "node.kubernetes.io/not-ready" in ready.args["unless"]
    )
    names = [s.name for s in scenario.stage("node-config").steps]
    assert (
        names.index("kubelet-ready") < names.index("hello-world-scale") < names.index("hello-world-on-node")
    )


def test_every_shell_command_parses(scenario: Scenario, context: dict[str, Any]) -> None:
    """Each rendered `run`/`unless` of the commands and command checks is valid sh (dash on the nodes)."""
    scripts = []
    for name in OWNED:
        stage = scenario.stage(name)
        for action in [*stage.steps, *stage.checks]:
            if action.kind != "command":
                continue
            for node in scenario.select(action.on):
                variables = {**context, "node": node_variables(scenario, node.name, context)}
                args = render_args(action.args, variables, action.name)
                scripts += [(name, action.name, args[k]) for k in ("run", "unless") if k in args]
    assert len(scripts) > 50
    for stage_name, action_name, script in scripts:
        parsed = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, check=False)
        assert parsed.returncode == 0, (stage_name, action_name, script, parsed.stderr)


GUIDE_CONFS = [
    # (guide of stage, stage, conf step, node): the KUBE_OPTS block the guide shows for that node
    ("apiserver", "apiserver", "apiserver-conf", "node1"),
    ("kubelet", "kubelet", "kubelet-conf", "node1"),
    ("node-config", "node-config", "kubelet-conf", "node2"),
    ("node-config", "node-config", "kubelet-conf", "node3"),
    ("scheduler", "scheduler", "scheduler-conf", "node1"),
    ("controller-manager", "controller-manager", "controller-manager-conf", "node1"),
    ("kube-proxy", "kube-proxy", "kube-proxy-conf", "node2"),
]


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_guides_show_the_flags_the_steps_write(
    scenario: Scenario, context: dict[str, Any], lang: str
) -> None:
    for guide, stage, step, node in GUIDE_CONFS:
        text = render_guide(scenario, guide, lang)
        shown = [
            set(re.findall(r"^\s*(--\S+) \\$", block, re.M))
            for block in re.findall(r'KUBE_OPTS=" \\\n(.*?)\n\s*"', text, re.S)
        ]
        written = set(kube_opts(_content(scenario, context, stage, step, node)))
        assert written in shown, (guide, node, shown)
