"""Each service that uses Redis has a user whose key patterns cover the
keys it writes, and nothing else's."""

from __future__ import annotations

import fnmatch

import pytest

from deploy import redis_users
from deploy.topology import load_topology
from services.cache.redis_tier import CLEAR_CHANNEL, redis_key


def test_every_service_that_uses_redis_has_a_user():
    services = [spec.k8s_name for spec in load_topology("deploy/topology.yaml").services.values() if spec.redis]
    assert set(redis_users.new_passwords(services)) == set(services) == set(redis_users.KEYS)
    with pytest.raises(ValueError, match="optimizer: uses Redis but has no Redis user"):
        redis_users.new_passwords(["optimizer"])


def _allowed(service: str, key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, p[1:]) for p in redis_users.KEYS[service] if p.startswith("~"))


def test_the_patterns_match_the_keys_each_service_writes():
    cache_key = redis_key("acme", "customer", "profile:e-1")
    lookup_key = "lookups:key/desk-7:493000"  # services/router/lookup_limit.py
    quota_key = "q:desk-7:chat:requests:29580000"  # gateway/quotas.py
    assert _allowed("cache", cache_key) and not _allowed("router", cache_key) and not _allowed("gateway", cache_key)
    assert _allowed("router", lookup_key) and not _allowed("cache", lookup_key)
    assert _allowed("gateway", quota_key) and not _allowed("cache", quota_key)
    assert f"&{CLEAR_CHANNEL}" in redis_users.KEYS["cache"]


def test_the_default_user_is_off_and_the_secret_holds_each_url():
    passwords = {"cache": "c-pw", "router": "r-pw"}
    lines = redis_users.acl_lines(passwords)
    assert lines[0] == "user default off"
    assert any(line.startswith("user cache on >c-pw resetkeys resetchannels ~tx:* &tx:v1:clear") for line in lines)
    secret = redis_users.secret_manifest("ns", passwords)
    assert set(secret["data"]) == {"users.acl", "cache-url", "router-url"}
