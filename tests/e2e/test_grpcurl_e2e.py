"""docs/api.md's grpcurl lines, run as written with the grpcurl that the
project's install puts in .venv/bin, against Envoy's :9090."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import grpc
from tilores_x.v1 import audit_pb2, audit_pb2_grpc

from tests.docs import REPO, section

GRPCURL = REPO / ".venv" / "bin" / "grpcurl"


def documented_lines() -> list[list[str]]:
    text = section("docs/api.md", "## gRPC with grpcurl")
    return [shlex.split(line) for line in re.findall(r"```sh\n(.*?)\n```", text, re.S)]


def as_written(argv: list[str], mesh) -> list[str]:
    """The line with this mesh's certificates and port in place of
    `.data/certs` and :9090, as the reader's own `make run` would have them."""
    certs = str(Path(mesh.certificates.ca_file).parent)
    port = mesh.grpc_addr.rsplit(":", 1)[1]
    return [a.replace(".data/certs", certs).replace("localhost:9090", f"localhost:{port}") for a in argv]


def grpcurl(argv: list[str]) -> subprocess.CompletedProcess:
    assert argv[0] == ".venv/bin/grpcurl"
    return subprocess.run(argv, check=False, cwd=REPO, capture_output=True, text=True, timeout=60)


def without(argv: list[str], *flags: str) -> list[str]:
    """argv less each flag and its value."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        else:
            out.append(arg)
    return out


def test_the_installed_grpcurl_is_the_real_one():
    done = subprocess.run([str(GRPCURL), "-version"], check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stderr.startswith("grpcurl v1."), done


def test_the_health_check_answers_serving_with_the_operator_certificate(mesh):
    health, _ = documented_lines()
    done = grpcurl(as_written(health, mesh))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"status": "SERVING"}


def test_without_a_client_certificate_every_call_is_unauthenticated(mesh):
    for line in documented_lines():
        done = grpcurl(without(as_written(line, mesh), "-cert", "-key"))
        assert done.returncode != 0
        assert "Unauthenticated" in done.stderr
        assert "a verified caller is required" in done.stderr


def test_the_call_from_the_protos_needs_no_reflection_and_goes_on_record(mesh, customers):
    _, search = documented_lines()
    assert "-import-path" in search and "x-mesh-service" not in " ".join(search)
    started = time.time()
    done = grpcurl(as_written(search, mesh))
    assert done.returncode == 0, done.stderr
    [entity] = json.loads(done.stdout)["entities"]
    edwina = next(c for c in customers if c.records[0]["EMAIL"] == "edwina.hawthorne@example.com")
    assert entity["id"] == edwina.entity_id and entity["records"]

    # On the access log under the certificate's name.
    query = audit_pb2.QueryAccessRequest(who="client/operator", entity_id=edwina.entity_id, since=started - 1)
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        audit = audit_pb2_grpc.AuditServiceStub(channel)
        for _ in range(100):
            records = [r for r in audit.QueryAccess(query, timeout=10).records if "SearchEntities" in r.action]
            if records:
                break
            time.sleep(0.1)
    assert records, "the search is not on the access log"


def test_a_certificate_without_the_scope_is_denied_naming_it(mesh):
    _, search = documented_lines()
    mesh.client_tls("client", "holds-audit.read")  # its certificate, made
    argv = as_written(search, mesh)
    argv = [a.replace("client-operator", "client-holds-audit.read") for a in argv]
    done = grpcurl(argv)
    assert done.returncode != 0
    assert "Code: PermissionDenied" in done.stderr and "'customers.read'" in done.stderr


def test_the_banner_prints_the_health_check_as_documented(mesh):
    # The banner's line is the documented one with this mesh's own paths.
    health, _ = documented_lines()
    printed = next(line for line in mesh.banner().splitlines() if "grpcurl" in line)
    assert shlex.split(printed.split("grpc health check", 1)[1]) == as_written(health, mesh)
