"""Generate the Kubernetes manifests from the topology:
`python -m deploy.kubernetes --topology deploy/topology.yaml --out deploy/k8s`.

One file per service (ServiceAccount, Deployment, headless and ClusterIP
Services, HorizontalPodAutoscaler, PodDisruptionBudget, NetworkPolicy and,
for state, a PersistentVolumeClaim), one for the edge Envoy (its production
config in a ConfigMap), one for Redis and one for the namespace with the
default-deny policies. Ports, names and peers come from the topology only.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import yaml

from deploy import redis_users
from deploy.certificates import MOUNTED
from deploy.envoy_config import ConfigDumper, render_envoy_config
from deploy.envoy_config import dump as dump_envoy
from deploy.topology import ServiceSpec, Topology, topology_for_command

PART_OF = "tilores-x-mesh"
REDIS_PORT = 6379
# Prometheus scrapes from this namespace.
MONITORING_NAMESPACE = "monitoring"
PRESTOP_SLEEP_S = 5  # endpoint removal reaches Envoy (5 s DNS refresh) and clients before draining
TMP = {"name": "TMPDIR", "value": "/scratch"}


def _tls_volume(name: str) -> tuple[dict, dict]:
    """The pod's certificate in the mesh: the Secret `<name>-tls` (type
    kubernetes.io/tls with `ca.crt`), readable by the pod's group only.
    Processes read it at start: `kubectl rollout restart` after rotating."""
    volume = {"name": "tls", "secret": {"secretName": f"{name}-tls", "defaultMode": 0o440}}
    mount = {"name": "tls", "mountPath": str(MOUNTED.cert_file.parent), "readOnly": True}
    return volume, mount


def _labels(name: str, component: str = "service") -> dict:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": component,
    }


def _selector(name: str) -> dict:
    return {"app.kubernetes.io/name": name}


def _meta(name: str, topology: Topology, component: str = "service", **extra) -> dict:
    return {"name": name, "namespace": topology.kubernetes.namespace, "labels": _labels(name, component), **extra}


def grace_period_s(topology: Topology) -> int:
    """Pod termination budget: the preStop pause, the longest stream, a margin."""
    return PRESTOP_SLEEP_S + topology.envoy.max_stream_duration_s + 15


def _container_security() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security(uid: int) -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _limits(cpu: str, memory: str) -> dict:
    # Memory limit equals the request (no overcommit surprises); CPU is not
    # limited, because CFS throttling adds latency to token streams.
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}


def peer_address(peer: ServiceSpec, topology: Topology) -> str:
    """A `dns:///` target on the headless Service: the client balances
    round robin over every ready pod and re-resolves as pods come and go."""
    return f"dns:///{peer.k8s_name}-headless.{topology.kubernetes.namespace}.svc.cluster.local:{peer.port}"


def _service_env(spec: ServiceSpec, topology: Topology) -> list[dict]:
    env = [
        {"name": "LISTEN_ADDR", "value": f"0.0.0.0:{spec.port}"},
        {"name": "GRACE_PERIOD_S", "value": str(topology.envoy.max_stream_duration_s)},
        {"name": "LOG_LEVEL", "value": "INFO"},
        {"name": "OTEL_SERVICE_NAME", "value": spec.name},
        # No exporter unless an SRE sets one (e.g. otlp with OTEL_EXPORTER_OTLP_ENDPOINT).
        {"name": "OTEL_TRACES_EXPORTER", "value": "none"},
        {
            "name": "OTEL_PYTHON_GRPC_EXCLUDED_SERVICES",
            "value": ",".join(
                (
                    "grpc.health.v1.Health",
                    "grpc.reflection.v1alpha.ServerReflection",
                    "grpc.reflection.v1.ServerReflection",
                )
            ),
        },
        TMP,
    ]
    if spec.protocol == "grpc":
        env.append({"name": "METRICS_ADDR", "value": f"0.0.0.0:{topology.kubernetes.metrics_port}"})
        env.append({"name": "PROBE_ADDR", "value": f"0.0.0.0:{topology.kubernetes.probe_port}"})
        # The pod's emptyDir outlives a restart of its container (a crash, a
        # stuck loop's exit): what the service had not delivered is sent then.
        env.append({"name": "SPOOL_DIR", "value": "/scratch/spool"})
    env.extend({"name": key, "value": value} for key, value in MOUNTED.env().items())
    env.append({"name": "MESH_GRANTS", "value": topology.grants().render()})
    for peer in spec.all_peers:
        env.append({"name": f"{peer.upper()}_SERVICE_ADDR", "value": peer_address(topology.services[peer], topology)})
    if spec.redis and not any(key == "REDIS_URL" for key, _ in spec.env):
        # The service's own Redis user and password (deploy/redis_users.py).
        url = {"secretKeyRef": {"name": redis_users.SECRET, "key": f"{spec.k8s_name}-url"}}
        env.append({"name": "REDIS_URL", "valueFrom": url})
    env.extend({"name": key, "value": value} for key, value in spec.env)
    return env


def _secret_env(spec: ServiceSpec) -> list[dict]:
    """Secrets the service reads, as the topology names them, created by the
    operator (see docs/operations.md)."""
    return [
        {"secretRef": {"name": name, **({"optional": True} if optional else {})}} for name, optional in spec.secrets
    ]


def _probes(spec: ServiceSpec, topology: Topology) -> dict:
    if spec.protocol == "grpc":
        # Native gRPC probes need a port number, not a name, and speak
        # plaintext: they ask the probe port, which serves health alone.
        def grpc(service: str, period: int, failures: int) -> dict:
            return {
                "grpc": {"port": topology.kubernetes.probe_port, "service": service},
                "periodSeconds": period,
                "failureThreshold": failures,
                "timeoutSeconds": 2,
            }

        return {
            "startupProbe": grpc("readiness", 2, 60),
            "readinessProbe": grpc("readiness", 5, 2),
            "livenessProbe": grpc("liveness", 10, 3),
        }

    def http(path: str, period: int, failures: int) -> dict:
        return {
            # The gateway serves HTTPS with its certificate; the kubelet does not verify it.
            "httpGet": {"path": path, "port": spec.port, "scheme": "HTTPS"},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 2,
        }

    return {
        "startupProbe": http("/health/live", 2, 60),
        "readinessProbe": http("/health/ready", 5, 2),
        "livenessProbe": http("/health/live", 10, 3),
    }


ROLLING = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
# A single writer is replaced, never doubled: two pods would share the file.
RECREATE = {"type": "Recreate"}


def _deployment_manifest(
    name: str,
    topology: Topology,
    component: str,
    *,
    replicas: int,
    container: dict,
    volumes: list[dict],
    uid: int,
    strategy: dict = ROLLING,
    grace_s: int | None = None,
    annotations: dict | None = None,
    spread: bool = False,
) -> dict:
    """The one Deployment shape of the mesh: its own service account with no
    token, a non-root pod, one container."""
    template_metadata: dict = {"labels": _labels(name, component)}
    if annotations:
        template_metadata["annotations"] = annotations
    pod: dict = {"serviceAccountName": name, "automountServiceAccountToken": False}
    if grace_s is not None:
        pod["terminationGracePeriodSeconds"] = grace_s
    pod["securityContext"] = _pod_security(uid)
    if spread:
        pod["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": _selector(name)},
            }
        ]
    pod["containers"] = [container]
    pod["volumes"] = volumes
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, topology, component),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "strategy": strategy,
            "selector": {"matchLabels": _selector(name)},
            "template": {"metadata": template_metadata, "spec": pod},
        },
    }


def _deployment(spec: ServiceSpec, topology: Topology) -> dict:
    name = spec.k8s_name
    metrics_port = topology.kubernetes.metrics_port if spec.protocol == "grpc" else spec.port
    ports = [{"name": "grpc" if spec.protocol == "grpc" else "http", "containerPort": spec.port}]
    if spec.protocol == "grpc":
        ports.append({"name": "metrics", "containerPort": metrics_port})
    command = ["python", "-m", "gateway" if spec.protocol == "http" else f"services.{spec.name}"]
    tls_volume, tls_mount = _tls_volume(name)
    mounts = [{"name": "scratch", "mountPath": "/scratch"}, tls_mount]
    volumes: list[dict] = [{"name": "scratch", "emptyDir": {"sizeLimit": "256Mi"}}, tls_volume]
    if spec.volume:
        mounts.append({"name": "state", "mountPath": spec.volume})
        volumes.append({"name": "state", "persistentVolumeClaim": {"claimName": f"{name}-state"}})
    container = {
        "name": name,
        "image": topology.kubernetes.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "ports": ports,
        "env": _service_env(spec, topology),
        **({"envFrom": _secret_env(spec)} if _secret_env(spec) else {}),
        "resources": _limits(spec.cpu, spec.memory),
        **_probes(spec, topology),
        # Endpoint removal travels to Envoy and the clients' resolvers while
        # the pod still serves; then SIGTERM starts the drain.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_S}}},
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    return _deployment_manifest(
        name,
        topology,
        "service",
        replicas=spec.replicas,
        container=container,
        volumes=volumes,
        uid=10001,
        strategy=RECREATE if spec.volume else ROLLING,
        grace_s=grace_period_s(topology),
        annotations={
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(metrics_port),
            "prometheus.io/path": "/metrics",
            # The gateway serves /metrics on its HTTPS port.
            "prometheus.io/scheme": "https" if spec.protocol == "http" else "http",
        },
        spread=True,
    )


def _services(spec: ServiceSpec, topology: Topology) -> list[dict]:
    name = spec.k8s_name
    port_name = "grpc" if spec.protocol == "grpc" else "http"
    port = {"name": port_name, "port": spec.port, "targetPort": spec.port, "protocol": "TCP"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(f"{name}-headless", topology),
            # One A record per ready pod: Envoy (STRICT_DNS) and gRPC clients
            # (dns:/// with round_robin) balance per call, not per connection.
            "spec": {"clusterIP": "None", "selector": _selector(name), "ports": [port]},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, topology),
            # One stable address for tools (grpcurl, port-forward) and scrapers.
            "spec": {"type": "ClusterIP", "selector": _selector(name), "ports": [port]},
        },
    ]


def _autoscaler(spec: ServiceSpec, topology: Topology) -> list[dict]:
    if spec.max_replicas <= spec.replicas:
        return []
    name = spec.k8s_name
    metrics: list[dict] = [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    if spec.streaming:
        # Token streams mostly wait on I/O, so CPU under-reports load; the
        # in-flight gauge comes through a custom-metrics adapter.
        metric = "grpc_server_streams_in_flight" if spec.protocol == "grpc" else "http_streams_in_flight"
        metrics.insert(
            0,
            {
                "type": "Pods",
                "pods": {"metric": {"name": metric}, "target": {"type": "AverageValue", "averageValue": "100"}},
            },
        )
    return [
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(name, topology),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": spec.replicas,
                "maxReplicas": spec.max_replicas,
                "metrics": metrics,
                # Longer than the longest stream, so scale-down does not cut answers.
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": max(600, grace_period_s(topology))}},
            },
        }
    ]


def _disruption_budget(name: str, topology: Topology, component: str = "service") -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(name, topology, component),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(name)}},
    }


def _service_account(name: str, topology: Topology, component: str = "service") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(name, topology, component),
        "automountServiceAccountToken": False,
    }


def _from_pods(*names: str) -> list[dict]:
    return [{"podSelector": {"matchLabels": _selector(name)}} for name in names]


def _monitoring_peer() -> dict:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}}}


def _https_egress() -> dict:
    return {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}


def _network_policy(spec: ServiceSpec, topology: Topology) -> dict:
    name = spec.k8s_name
    callers = [topology.services[c].k8s_name for c in topology.callers(spec.name)]
    callers.append("envoy")  # the edge Envoy routes to every service
    ingress: list[dict] = [
        {"from": _from_pods(*sorted(set(callers))), "ports": [{"protocol": "TCP", "port": spec.port}]},
    ]
    if spec.protocol == "grpc":
        ingress.append(
            {"from": [_monitoring_peer()], "ports": [{"protocol": "TCP", "port": topology.kubernetes.metrics_port}]}
        )
    else:
        ingress.append({"from": [_monitoring_peer()], "ports": [{"protocol": "TCP", "port": spec.port}]})
    egress = [
        {
            "to": _from_pods(topology.services[peer].k8s_name),
            "ports": [{"protocol": "TCP", "port": topology.services[peer].port}],
        }
        for peer in spec.all_peers
    ]
    if spec.redis:
        egress.append({"to": _from_pods("redis"), "ports": [{"protocol": "TCP", "port": REDIS_PORT}]})
    if spec.egress_https:
        egress.append(_https_egress())
    if spec.postgres:
        kube = topology.kubernetes
        egress.append(
            {
                "to": [{"ipBlock": {"cidr": kube.postgres_cidr}}],
                "ports": [{"protocol": "TCP", "port": kube.postgres_port}],
            }
        )
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, topology),
        "spec": {
            "podSelector": {"matchLabels": _selector(name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
    if not egress:
        del policy["spec"]["egress"]  # Egress listed with no rules: nothing but DNS goes out
    return policy


def _volume_claim(spec: ServiceSpec, topology: Topology) -> list[dict]:
    if not spec.volume:
        return []
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta(f"{spec.k8s_name}-state", topology),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": spec.volume_size}}},
        }
    ]


def service_manifests(spec: ServiceSpec, topology: Topology) -> list[dict]:
    return [
        _service_account(spec.k8s_name, topology),
        *_volume_claim(spec, topology),
        _deployment(spec, topology),
        *_services(spec, topology),
        *_autoscaler(spec, topology),
        _disruption_budget(spec.k8s_name, topology),
        _network_policy(spec, topology),
    ]


def _envoy_deployment(topology: Topology, config: str) -> dict:
    drain_s = topology.envoy.max_stream_duration_s
    return _deployment_manifest(
        "envoy",
        topology,
        "edge",
        replicas=topology.kubernetes.envoy_replicas,
        container=_envoy_container(topology),
        volumes=[
            {"name": "config", "configMap": {"name": "envoy-config"}},
            {"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}},
            _tls_volume("envoy")[0],
        ],
        uid=101,
        grace_s=drain_s + 20,
        annotations={"checksum/config": _checksum(config)},
    )


def _envoy_container(topology: Topology) -> dict:
    envoy = topology.envoy
    drain_s = envoy.max_stream_duration_s
    # The image has no curl: POST through bash's /dev/tcp (GET would be refused).
    drain = (
        f"exec 3<>/dev/tcp/127.0.0.1/{envoy.admin_port} && "
        "printf 'POST /drain_listeners?graceful&inboundonly HTTP/1.1\\r\\nHost: localhost\\r\\n"
        "Content-Length: 0\\r\\nConnection: close\\r\\n\\r\\n' >&3 && cat <&3 >/dev/null; "
        f"sleep {drain_s}"
    )
    ports = [
        {"name": "rest", "containerPort": envoy.rest_port},
        {"name": "grpc", "containerPort": envoy.grpc_port},
    ]
    ready = {
        "httpGet": {"path": "/ready", "port": envoy.rest_port},
        "periodSeconds": 5,
        "failureThreshold": 2,
        "timeoutSeconds": 2,
    }
    return {
        "name": "envoy",
        "image": topology.kubernetes.envoy_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["envoy"],
        "args": [
            "-c", "/etc/envoy/envoy.yaml", "--disable-hot-restart", "--drain-strategy", "immediate",
            "--drain-time-s", str(drain_s), "--log-level", "warn",
        ],
        "ports": ports,
        "resources": _limits("500m", "256Mi"),
        "startupProbe": {**ready, "periodSeconds": 2, "failureThreshold": 30},
        "readinessProbe": ready,
        "livenessProbe": {"tcpSocket": {"port": envoy.rest_port}, "periodSeconds": 10, "failureThreshold": 3},
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/bash", "-c", drain]}}},
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/envoy", "readOnly": True},
            {"name": "scratch", "mountPath": "/tmp"},
            _tls_volume("envoy")[1],
        ],
    }  # fmt: skip


def _envoy_services(topology: Topology) -> list[dict]:
    envoy = topology.envoy
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("envoy", topology, "edge"),
            "spec": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Local",
                "selector": _selector("envoy"),
                "ports": [{"name": "rest", "port": envoy.rest_port, "targetPort": envoy.rest_port}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("envoy-grpc", topology, "edge"),
            "spec": {
                "type": "ClusterIP",
                "selector": _selector("envoy"),
                "ports": [{"name": "grpc", "port": envoy.grpc_port, "targetPort": envoy.grpc_port}],
            },
        },
    ]


def _envoy_network_policy(topology: Topology) -> dict:
    envoy = topology.envoy
    ingress: list[dict] = [{"ports": [{"protocol": "TCP", "port": envoy.rest_port}]}]  # chat clients, from anywhere
    if topology.kubernetes.grpc_clients:
        # Callers of gRPC: only the pods the topology names, each in its own
        # namespace (both selectors in one peer: AND). None named: no rule,
        # since a rule with no peers would admit everyone.
        ingress.append(
            {
                "from": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                        "podSelector": {"matchLabels": dict(labels)},
                    }
                    for namespace, labels in topology.kubernetes.grpc_clients
                ],
                "ports": [{"protocol": "TCP", "port": envoy.grpc_port}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("envoy", topology, "edge"),
        "spec": {
            "podSelector": {"matchLabels": _selector("envoy")},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": [
                {"to": _from_pods(spec.k8s_name), "ports": [{"protocol": "TCP", "port": spec.port}]}
                for spec in topology.services.values()
            ],
        },
    }


def _envoy_autoscaler(topology: Topology) -> dict:
    drain_s = topology.envoy.max_stream_duration_s
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta("envoy", topology, "edge"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "envoy"},
            "minReplicas": topology.kubernetes.envoy_replicas,
            "maxReplicas": max(10, topology.kubernetes.envoy_replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": max(600, drain_s + 20)}},
        },
    }


def envoy_manifests(topology: Topology) -> list[dict]:
    """The edge: its config in a ConfigMap, its Deployment, Services, autoscaler, budget and policy."""
    config = dump_envoy(render_envoy_config(topology, kubernetes=True))
    return [
        _service_account("envoy", topology, "edge"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("envoy-config", topology, "edge"),
            "data": {"envoy.yaml": config},
        },
        _envoy_deployment(topology, config),
        *_envoy_services(topology),
        _envoy_autoscaler(topology),
        _disruption_budget("envoy", topology, "edge"),
        _envoy_network_policy(topology),
    ]


def redis_manifests(topology: Topology) -> list[dict]:
    """The cache's second tier: a cache, so no persistence; a managed Redis
    replaces it by pointing the cache's REDIS_URL elsewhere."""
    callers = [spec.k8s_name for spec in topology.services.values() if spec.redis]
    return [
        _service_account("redis", topology, "cache-store"),
        _deployment_manifest(
            "redis",
            topology,
            "cache-store",
            replicas=1,
            container=_redis_container(topology),
            volumes=[
                {"name": "data", "emptyDir": {"sizeLimit": "64Mi"}},
                {
                    "name": "users",
                    "secret": {
                        "secretName": redis_users.SECRET,
                        "items": [{"key": redis_users.ACL_KEY, "path": redis_users.ACL_KEY}],
                        "defaultMode": 0o400,
                    },
                },
            ],
            uid=999,
            strategy=RECREATE,
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("redis", topology, "cache-store"),
            "spec": {
                "type": "ClusterIP",
                "selector": _selector("redis"),
                "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": REDIS_PORT}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("redis", topology, "cache-store"),
            "spec": {
                "podSelector": {"matchLabels": _selector("redis")},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": _from_pods(*callers), "ports": [{"protocol": "TCP", "port": REDIS_PORT}]}],
            },
        },
    ]


def _redis_container(topology: Topology) -> dict:
    probe = {
        "exec": {"command": redis_users.PROBE_COMMAND},
        "periodSeconds": 5,
        "failureThreshold": 3,
        "timeoutSeconds": 2,
    }
    return {
        "name": "redis",
        "image": topology.kubernetes.redis_image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory",
            "384mb",
            "--maxmemory-policy",
            "allkeys-lru",
            # A user per service, the default user off: the
            # redis-users Secret (python -m deploy.redis_users).
            "--aclfile",
            f"/etc/redis/{redis_users.ACL_KEY}",
        ],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT}],
        "resources": _limits("100m", "512Mi"),
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 10},
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "users", "mountPath": "/etc/redis", "readOnly": True},
        ],
    }


def namespace_manifests(topology: Topology) -> list[dict]:
    namespace = topology.kubernetes.namespace
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {
                    "app.kubernetes.io/part-of": PART_OF,
                    # Every pod here meets the "restricted" Pod Security Standard.
                    "pod-security.kubernetes.io/enforce": "restricted",
                },
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "default-deny",
                "namespace": namespace,
                "labels": {"app.kubernetes.io/part-of": PART_OF},
            },
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "allow-dns", "namespace": namespace, "labels": {"app.kubernetes.io/part-of": PART_OF}},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        },
    ]


def _checksum(text: str) -> str:
    """Changes with the config, so a new config rolls the Envoy pods."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_manifests(topology: Topology) -> dict[str, str]:
    """File name -> multi-document YAML, in the order to apply them."""
    files = {"00-namespace.yaml": namespace_manifests(topology), "10-redis.yaml": redis_manifests(topology)}
    for index, name in enumerate(topology.start_order()):
        spec = topology.services[name]
        files[f"{20 + index}-{spec.k8s_name}.yaml"] = service_manifests(spec, topology)
    files["90-envoy.yaml"] = envoy_manifests(topology)
    header = "# Generated by `python -m deploy.kubernetes` from deploy/topology.yaml; do not edit.\n"
    return {
        name: header + "---\n".join(yaml.dump(doc, Dumper=ConfigDumper, sort_keys=False, width=120) for doc in docs)
        for name, docs in files.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", default="deploy/topology.yaml")
    parser.add_argument("--out", default="deploy/k8s")
    args = parser.parse_args(argv)
    topology = topology_for_command(args.topology)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rendered = render_manifests(topology)
    for stale in out.glob("*.yaml"):
        if stale.name not in rendered:
            stale.unlink()
    for name, text in rendered.items():
        (out / name).write_text(text)
    print(f"wrote {len(rendered)} files to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
