"""Every service as its Kubernetes Deployment runs it, short of a cluster
(tests/pods.py), on loopback with peers dialled through `dns:///` as in
the cluster. A chat about the demo customer must work end to end, and
every process must stop cleanly."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from base64 import b64decode

import psycopg
import pytest

from deploy import redis_users
from deploy.certificates import MeshCertificates, secret_folders
from deploy.topology import load_topology
from services.runtime.loop_watchdog import EXIT_STUCK
from tests.integration.redis_server import RedisServer
from tests.pods import REPO, Pod, checked_read_only_mounts, deployments, free_port

pytestmark = pytest.mark.e2e

API_KEY = "sk-pod-test-0123456789"
# What `kubectl create secret generic gateway-keys` holds (docs/operations.md, Deploy).
SECRETS = {
    "gateway": {"GATEWAY_API_KEYS": API_KEY, "GATEWAY_ADMIN_KEYS": "sk-admin-pod-test-0123456789"},
    "audit": {"AUDIT_CHAIN_KEY": "5a" * 32},
}


@pytest.fixture(scope="module")
def read_only_mounts() -> set[str]:
    return checked_read_only_mounts()


def _ask(gateway: Pod) -> str:
    question = "What is the status and credit score of edwina.hawthorne@example.com?"
    request = urllib.request.Request(
        f"https://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=json.dumps({"model": "offline", "messages": [{"role": "user", "content": question}]}).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    deadline = time.monotonic() + 30
    while True:  # a restarted peer is dialled again within a second or two
        try:
            with urllib.request.urlopen(request, timeout=30, context=gateway.ssl_context) as reply:
                return json.load(reply)["choices"][0]["message"]["content"]
        except urllib.error.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_every_service_runs_as_its_deployment_on_a_read_only_root(tmp_path, read_only_mounts, postgres):
    topology = load_topology(REPO / "deploy/topology.yaml")
    # What `kubectl create secret generic optimizer-database` holds (docs/operations.md): the replicas' PostgreSQL.
    operator_secrets = {**SECRETS, "optimizer": {"OPTIMIZER_DATABASE_URL": postgres.create_database("pods")}}
    pod_specs = deployments()
    # The redis-users Secret docs/operations.md has an operator create, for a Redis on this machine.
    acl = tmp_path / "users.acl"
    redis = RedisServer(tmp_path, acl)
    users = redis_users.secret_manifest("tilores-x", redis_users.new_passwords(("cache", "router", "gateway")),
                                        "127.0.0.1", redis.port)  # fmt: skip
    cluster_secrets = {users["metadata"]["name"]: {k: b64decode(v).decode() for k, v in users["data"].items()}}
    acl.write_text(cluster_secrets[redis_users.SECRET][redis_users.ACL_KEY])
    redis.start()
    pods: dict[str, Pod] = {}
    codes: dict[str, int] = {}
    # The Secrets docs/operations.md has an operator create (python -m deploy.certificates).
    secrets = secret_folders(topology, MeshCertificates(tmp_path / "certs"))
    # A service called only later (`later_peers`) may start after its
    # caller: its port is chosen first, as a cluster's DNS name exists first.
    reserved = {peer: free_port() for spec in topology.services.values() for peer in spec.later_peers}
    try:
        for name in topology.start_order():
            spec = topology.services[name]
            pod = Pod(name, pod_specs[spec.k8s_name], tmp_path / "pods")
            pod.install_secret(secrets[f"{spec.k8s_name}-tls"])
            ports = {peer: pods[peer].port for peer in spec.peers} | {p: reserved[p] for p in spec.later_peers}
            env = pod.environment(ports, cluster_secrets, reserved.get(name, 0), operator_secrets)
            if name == "router":  # the test's hook: SIGUSR2 blocks its loop; stuck 3 s, it ends
                env.update(LOOP_STALL_TEST_SIGNAL="1", LOOP_STALL_LIMIT_S="3")
            pod.start(env, read_only_mounts)
            pods[name] = pod
            pod.wait_ready()

        answer = _ask(pods["gateway"])
        # A stuck loop: the liveness probe fails, the process ends itself, and
        # the kubelet (played here) starts the container again on its address.
        router = pods["router"]
        assert router.probe("livenessProbe")
        router.process.send_signal(signal.SIGUSR2)
        time.sleep(0.5)
        assert not router.probe("livenessProbe")
        assert router.process.wait(timeout=30) == EXIT_STUCK
        router.restart()
        router.wait_ready()
        answer_after_restart = _ask(pods["gateway"])
    finally:
        for name in reversed(list(pods)):
            codes[name] = pods[name].stop()
        redis.stop()

    assert "Edwina Hawthorne" in answer and "Active" in answer, answer
    assert "Edwina Hawthorne" in answer_after_restart, answer_after_restart
    assert codes == dict.fromkeys(pods, 0), {n: pods[n].log()[-1500:] for n, c in codes.items() if c}
    # State went where the manifests put it: the embedded demo store on the
    # tilores_data pod's scratch volume, the optimizer's prompts and outcomes in PostgreSQL, in no file.
    assert (pods["tilores_data"].volumes["/scratch"] / "tilores.db").stat().st_size > 0
    with psycopg.connect(operator_secrets["optimizer"]["OPTIMIZER_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM active_prompts").fetchone()[0] >= 1
    assert not list((tmp_path / "pods").rglob("optimizer.db"))
