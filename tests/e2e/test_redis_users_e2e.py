"""The mesh's Redis, tried as someone on the machine's network would: no
password gets nothing (no cached profile, no count of a key's customers to
delete), each service's user reaches only its own keys, and no password
shows on a command line or in a log."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.e2e
EDWINA = "edwina.hawthorne@example.com"


def _address(mesh) -> tuple[str, int]:
    host, port = mesh.redis_url.removeprefix("redis://").split("/")[0].split(":")
    return host, int(port)


def test_without_a_password_redis_answers_nothing(mesh, client):
    client.chat.completions.create(model="offline", messages=[{"role": "user", "content": f"status of {EDWINA}?"}])
    host, port = _address(mesh)
    anonymous = redis.Redis(host=host, port=port, protocol=2)
    for attempt in (
        lambda: anonymous.get("tx:v1:default:customer:{x}"),
        lambda: list(anonymous.scan_iter(match="*")),
        lambda: anonymous.delete("lookups:key/dev:1"),
        anonymous.flushall,
    ):
        with pytest.raises(redis.AuthenticationError):
            attempt()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=host, port=port, username="cache", password="guessed").ping()
    anonymous.close()


def test_each_service_reaches_only_its_own_keys(mesh, client):
    client.chat.completions.create(model="offline", messages=[{"role": "user", "content": f"status of {EDWINA}?"}])
    cache = redis.Redis.from_url(mesh.redis_url_for("cache"))
    router = redis.Redis.from_url(mesh.redis_url_for("router"))
    try:
        assert any(True for _ in cache.scan_iter(match="tx:v1:*", count=1000))  # its own: cached customers
        lookups = [key for key in router.scan_iter(match="lookups:*", count=1000)]
        assert lookups  # the router counts the dev key's customers
        with pytest.raises(redis.exceptions.NoPermissionError):
            cache.delete(lookups[0])  # the cache cannot reset a key's harvest limit
        with pytest.raises(redis.exceptions.NoPermissionError):
            router.get("tx:v1:default:customer:{x}")  # nor the router read cached profiles
        with pytest.raises(redis.exceptions.NoPermissionError):
            cache.config_get("requirepass")
    finally:
        cache.close()
        router.close()


def test_no_redis_password_on_a_command_line_or_in_a_log(mesh):
    passwords = [mesh.redis_url_for(name).split(":")[2].split("@")[0] for name in ("cache", "router", "gateway")]
    lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                lines.append((proc / "cmdline").read_bytes().decode(errors="replace"))
            except OSError:
                continue
    logs = [path.read_text(errors="replace") for path in mesh.log_dir.glob("*.log")]
    for password in passwords:
        assert all(password not in line for line in lines)
        assert all(password not in text for text in logs)
    assert oct((mesh.run_dir / "redis.conf").stat().st_mode & 0o777) == "0o600"
