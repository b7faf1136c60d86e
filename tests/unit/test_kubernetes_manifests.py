"""The Kubernetes manifests: generated from the topology (golden files in
deploy/k8s), valid against pinned Kubernetes schemas, hardened, and wired so
each service accepts only its callers."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploy.certificates import MOUNTED, MeshCertificates, secret_folders
from deploy.edge_envoy import envoy_binary
from deploy.envoy_config import render_envoy_config
from deploy.kubernetes import grace_period_s, render_manifests
from deploy.topology import TopologyError, load_topology, parse_topology

K8S = Path("deploy/k8s")
VERSIONS = ("1.29", "1.33")


@pytest.fixture(scope="module")
def topology():
    return load_topology("deploy/topology.yaml")


@pytest.fixture(scope="module")
def documents() -> list[dict]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kinds(documents, kind):
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == kind}


def _validate(paths: list[Path]) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet"]
    for version in VERSIONS:
        command += ["-k", version]
    return subprocess.run([*command, *map(str, paths)], capture_output=True, text=True, timeout=120, check=False)


def test_committed_manifests_are_what_the_topology_generates(topology):
    rendered = render_manifests(topology)
    assert sorted(rendered) == sorted(p.name for p in K8S.glob("*.yaml")), "run `make k8s`"
    for name, text in rendered.items():
        assert (K8S / name).read_text() == text, f"deploy/k8s/{name} is stale: run `make k8s`"
        assert "&id0" not in text, f"{name}: YAML anchors make a manifest hard to review"
    # Envoy's config is a readable block in its ConfigMap, not one escaped string.
    assert "  envoy.yaml: |\n    admin:\n" in rendered["90-envoy.yaml"]


def test_every_manifest_passes_strict_schema_validation():
    result = _validate(sorted(K8S.glob("*.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_validation_rejects_an_unknown_field(tmp_path, documents):
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["bogusField"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deployment))
    result = _validate([path])
    assert result.returncode == 1
    assert "bogusField" in result.stdout + result.stderr


def test_envoy_config_in_the_configmap_passes_envoy_validation(tmp_path, documents, topology):
    config = _kinds(documents, "ConfigMap")["envoy-config"]["data"]["envoy.yaml"]
    # The files Envoy's Secret mounts must exist to validate: a real certificate there.
    mounted = MOUNTED.cert_file.parent
    folder = secret_folders(topology, MeshCertificates(tmp_path / "certs"))["envoy-tls"]
    assert str(mounted) in config
    path = tmp_path / "envoy.yaml"
    path.write_text(config.replace(str(mounted), str(folder)))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_envoy_reaches_every_pod_through_the_headless_services(topology):
    config = render_envoy_config(topology, kubernetes=True)
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    llm = clusters["llm_gateway"]
    assert llm["type"] == "STRICT_DNS"
    assert llm["lb_policy"] == "LEAST_REQUEST"
    address = llm["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert address == {"address": "llm-gateway-headless.tilores-x.svc.cluster.local", "port_value": 50052}
    assert llm["health_checks"][0]["grpc_health_check"] == {"service_name": "readiness"}
    assert llm["circuit_breakers"]["thresholds"][0]["max_requests"] == 10000
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    listeners = config["static_resources"]["listeners"]
    assert {listener["address"]["socket_address"]["address"] for listener in listeners} == {"0.0.0.0"}


def test_every_pod_is_hardened_and_probed(documents, topology):
    deployments = _kinds(documents, "Deployment")
    assert set(deployments) == {*(s.k8s_name for s in topology.services.values()), "envoy", "redis"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert container["resources"]["requests"], name
            assert ":" in container["image"] and not container["image"].endswith(":latest"), name
    for spec in topology.services.values():
        pod = deployments[spec.k8s_name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["terminationGracePeriodSeconds"] >= topology.envoy.max_stream_duration_s
        assert pod["terminationGracePeriodSeconds"] == grace_period_s(topology)
        if spec.protocol == "grpc":
            # The kubelet shows no certificate: it asks the plaintext probe port.
            probe_port = topology.kubernetes.probe_port
            assert container["readinessProbe"]["grpc"] == {"port": probe_port, "service": "readiness"}
            assert container["livenessProbe"]["grpc"] == {"port": probe_port, "service": "liveness"}
            env = {item["name"]: item.get("value") for item in container["env"]}
            assert env["PROBE_ADDR"] == f"0.0.0.0:{probe_port}"
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["TLS_CERT_FILE"] == str(MOUNTED.cert_file)
        assert {"name": "tls", "secret": {"secretName": f"{spec.k8s_name}-tls", "defaultMode": 0o440}} in pod["volumes"]


def test_each_service_has_headless_and_clusterip_services_an_autoscaler_and_a_budget(documents, topology):
    services = _kinds(documents, "Service")
    autoscalers = _kinds(documents, "HorizontalPodAutoscaler")
    budgets = _kinds(documents, "PodDisruptionBudget")
    accounts = _kinds(documents, "ServiceAccount")
    for spec in topology.services.values():
        name = spec.k8s_name
        assert services[f"{name}-headless"]["spec"]["clusterIP"] == "None"
        assert services[name]["spec"]["type"] == "ClusterIP"
        assert services[name]["spec"]["ports"][0]["port"] == spec.port
        assert budgets[name]["spec"]["maxUnavailable"] == 1
        assert name in accounts
        if spec.max_replicas > spec.replicas:
            assert autoscalers[name]["spec"]["minReplicas"] == spec.replicas
            assert autoscalers[name]["spec"]["maxReplicas"] == spec.max_replicas
    streaming = autoscalers["llm-gateway"]["spec"]["metrics"][0]
    assert streaming["pods"]["metric"]["name"] == "grpc_server_streams_in_flight"
    # The optimizer's replicas share PostgreSQL: a normal rolling Deployment, scaled and budgeted like the others,
    # its database URL from a secret the operator creates; no volume of its own.
    optimizer = _kinds(documents, "Deployment")["optimizer"]
    assert optimizer["spec"]["strategy"]["type"] == "RollingUpdate"
    assert optimizer["spec"]["replicas"] >= 2 and autoscalers["optimizer"]["spec"]["minReplicas"] >= 2
    pod = optimizer["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "optimizer-database"}}]
    assert "persistentVolumeClaim" not in str(pod["volumes"])
    assert "optimizer-state" not in _kinds(documents, "PersistentVolumeClaim")


def test_peers_are_dialled_on_headless_services_with_client_side_balancing(documents):
    router = _kinds(documents, "Deployment")["router"]
    env = {e["name"]: e.get("value") for e in router["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LLM_GATEWAY_SERVICE_ADDR"] == "dns:///llm-gateway-headless.tilores-x.svc.cluster.local:50052"
    assert env["CACHE_SERVICE_ADDR"] == "dns:///cache-headless.tilores-x.svc.cluster.local:50054"
    assert env["OTEL_TRACES_EXPORTER"] == "none"


def test_network_policies_deny_by_default_and_admit_only_callers(documents):
    policies = _kinds(documents, "NetworkPolicy")
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}

    def callers(name):
        rule = policies[name]["spec"]["ingress"][0]
        return sorted(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in rule["from"])

    assert callers("llm-gateway") == ["envoy", "gateway", "optimizer", "router"]
    assert callers("tilores-data") == ["cache", "envoy", "optimizer", "router"]  # the optimizer: evaluation runs
    assert callers("audit") == ["envoy", "gateway", "router", "tilores-data"]
    assert callers("router") == ["envoy", "gateway", "optimizer"]
    assert callers("redis") == ["cache", "gateway", "router"]  # the services with redis: true
    router_egress = policies["router"]["spec"]["egress"]
    assert {rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for rule in router_egress} == {
        "cache",
        "tilores-data",
        "optimizer",
        "llm-gateway",
        "audit",
        "redis",
    }
    # Only the services that call outside APIs may open HTTPS connections.
    outside = {
        name: [
            (r["to"][0]["ipBlock"]["cidr"], r["ports"][0]["port"])
            for r in p["spec"].get("egress", [])
            if "ipBlock" in str(r)
        ]
        for name, p in policies.items()
    }
    assert {name for name, rules in outside.items() if rules} == {"llm-gateway", "tilores-data", "optimizer"}
    assert outside["llm-gateway"] == outside["tilores-data"] == [("0.0.0.0/0", 443)]
    # The optimizer reaches its PostgreSQL server only.
    assert outside["optimizer"] == [("10.0.0.0/8", 5432)]


def test_envoys_grpc_port_admits_only_the_pods_the_topology_names(documents, topology):
    rules = _kinds(documents, "NetworkPolicy")["envoy"]["spec"]["ingress"]
    grpc_rules = [r for r in rules if {"protocol": "TCP", "port": topology.envoy.grpc_port} in r["ports"]]
    assert len(grpc_rules) == 1
    peers = grpc_rules[0]["from"]
    assert peers == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "podSelector": {"matchLabels": dict(labels)},
        }
        for namespace, labels in topology.kubernetes.grpc_clients
    ]
    assert {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in peers} == {
        "call-centre",
        "tilores-x-ops",
    }
    # No callers named: no rule at all (a rule without peers would admit everyone).
    bare = render_manifests(parse_topology(BASE))
    envoy_policy = next(d for d in yaml.safe_load_all(bare["90-envoy.yaml"]) if d["kind"] == "NetworkPolicy")
    assert envoy_policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]


def test_envoy_drains_before_it_stops(documents, topology):
    envoy = _kinds(documents, "Deployment")["envoy"]["spec"]["template"]["spec"]
    container = envoy["containers"][0]
    command = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "POST /drain_listeners?graceful" in command
    assert envoy["terminationGracePeriodSeconds"] > topology.envoy.max_stream_duration_s
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


BASE = """
envoy: {rest_port: 8080, grpc_port: 9090, admin_port: 9901}
kubernetes: {namespace: tx, image: "mesh:1.0"}
services:
  router: {port: 1, grpc_service: tilores_x.v1.RouterService, replicas: 2, max_replicas: 4}
  store: {port: 2, grpc_service: tilores_x.v1.CacheService, volume: /data, max_replicas: 1}
  gateway: {port: 3, protocol: http, peers: [router]}
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("replicas: 2,", "replicas: 0,"), "services.router.replicas"),
        (("max_replicas: 4", "max_replicas: 1"), "services.router.max_replicas"),
        (("max_replicas: 1}", "max_replicas: 3}"), "services.store.max_replicas"),
        (("volume: /data", "volume: data"), "services.store.volume"),
        (('image: "mesh:1.0"', "image: mesh"), "kubernetes.image"),
        (('image: "mesh:1.0"', 'image: "mesh:latest"'), "kubernetes.image"),
        (("namespace: tx", "namespace: Tx_1"), "kubernetes.namespace"),
        (("replicas: 2,", "replicas: 2, cpu: lots,"), "services.router.cpu"),
        (('image: "mesh:1.0"', 'image: "mesh:1.0", grpc_clients: [{namespace: ops}]'), "at least one pod label"),
        (
            ('image: "mesh:1.0"', 'image: "mesh:1.0", grpc_clients: [{namespace: Ops, labels: {a: b}}]'),
            "expected a namespace name",
        ),
        (('image: "mesh:1.0"', 'image: "mesh:1.0", probe_port: 99999'), "kubernetes.probe_port"),
    ],
)
def test_bad_topology_for_kubernetes_names_the_field(change, message):
    parse_topology(BASE)
    with pytest.raises(TopologyError, match=message.replace(".", r"\.")):
        parse_topology(BASE.replace(*change))
