"""Redis users: who may use the mesh's Redis, and for what.

The default user is off: a client without a password gets nothing, not a
cached profile and not a key's count of customers. Each service that uses
Redis (`redis: true` in the topology) has a user of its own with its own
password, allowed only its own keys (and the cache its clear channel) and
no administrative or dangerous command, so the cache cannot reset the
router's lookup counts nor the router read cached profiles. Credentials
reach a service only as its REDIS_URL (`redis://<user>:<password>@host:port/0`),
never on a command line or in a log.

A liveness user (`probe`, password `probe`) may run PING and nothing else.

    python -m deploy.redis_users --namespace tilores-x > redis-users.yaml   # a Secret with new passwords
    kubectl apply -f redis-users.yaml
"""

from __future__ import annotations

import argparse
import base64
import secrets
import sys
from collections.abc import Iterable

import yaml

from deploy.topology import load_topology

# What each service's keys look like (services/cache/redis_tier.py,
# services/router/lookup_limit.py, gateway/quotas.py) and its channels.
KEYS = {
    "cache": ("~tx:*", "&tx:v1:clear"),
    "router": ("~lookups:*",),
    "gateway": ("~q:*",),
}
COMMANDS = "-@all +@read +@write +@keyspace +@pubsub +@connection +@transaction +@scripting -@dangerous"
PROBE_USER = "probe"
PROBE_COMMAND = ["redis-cli", "--no-auth-warning", "--user", PROBE_USER, "--pass", PROBE_USER, "ping"]
SECRET = "redis-users"  # the Kubernetes Secret: users.acl and <service>-url for each
ACL_KEY = "users.acl"


def new_passwords(services: Iterable[str]) -> dict[str, str]:
    """A fresh password for each service's user."""
    services = list(services)
    unknown = sorted(set(services) - set(KEYS))
    if unknown:
        raise ValueError(f"{unknown[0]}: uses Redis but has no Redis user (deploy/redis_users.py KEYS)")
    return {service: secrets.token_urlsafe(24) for service in services}


def acl_lines(passwords: dict[str, str]) -> list[str]:
    """The users, as `user` lines of redis.conf or an ACL file."""
    lines = ["user default off", f"user {PROBE_USER} on >{PROBE_USER} -@all +ping"]
    for service, password in sorted(passwords.items()):
        patterns = " ".join(KEYS[service])
        lines.append(f"user {service} on >{password} resetkeys resetchannels {patterns} {COMMANDS}")
    return lines


def url(service: str, password: str, host: str, port: int) -> str:
    return f"redis://{service}:{password}@{host}:{port}/0"


def secret_manifest(namespace: str, passwords: dict[str, str], host: str = "redis", port: int = 6379) -> dict:
    data = {ACL_KEY: "\n".join(acl_lines(passwords)) + "\n"}
    data |= {f"{service}-url": url(service, password, host, port) for service, password in passwords.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace},
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespace", default="tilores-x")
    parser.add_argument("--topology", default="deploy/topology.yaml")
    args = parser.parse_args(argv)
    topology = load_topology(args.topology)
    passwords = new_passwords(spec.k8s_name for spec in topology.services.values() if spec.redis)
    sys.stdout.write(yaml.safe_dump(secret_manifest(args.namespace, passwords), sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
