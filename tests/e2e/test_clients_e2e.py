"""docs/clients.md as a team outside this repository would follow it: every
example run as written (the paths of a checkout and this mesh's port in
place), from a folder of their own, against the whole mesh behind Envoy.

The Python service runs in a virtual environment that holds the client
package and nothing else; the Node service is clients/node with its own
npm install, generated stubs and the gRPC transport. Both show their own
client certificate (`client/agent-desk`, which holds `chat`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from deploy.certificates import MeshCertificates, secret_folders
from tests.docs import REPO, doc

# A new machine installs the package's dependencies and the Node service's with pip and npm.
pytestmark = pytest.mark.timeout(600)

PAGE = "docs/clients.md"
EDWINA = "edwina.hawthorne@example.com"
TEAM = "agent-desk"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", doc(PAGE), re.S)


def as_written(text: str, mesh) -> str:
    """A block with this checkout, this mesh's certificates and its port in
    place of the page's `/path/to/tilores-x-mesh`, `.data/certs` and :9090."""
    certs = str(Path(mesh.certificates.ca_file).parent)
    port = mesh.grpc_addr.rsplit(":", 1)[1]
    text = text.replace("/path/to/tilores-x-mesh/.data/certs", certs).replace(".data/certs", certs)
    return text.replace("/path/to/tilores-x-mesh", str(REPO)).replace("localhost:9090", f"localhost:{port}")


def sh(script: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # A clean environment: nothing of this repository's virtual environment leaks in.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        check=False,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def block_after(fence_text: str) -> str:
    """The sh block that runs a named file (`.venv/bin/python ask.py`)."""
    [found] = [b for b in blocks("sh") if fence_text in b]
    return found


@pytest.fixture(scope="module")
def team(mesh, tmp_path_factory) -> Path:
    """The team's own folder: its certificate made and the package installed, as the page says."""
    folder = tmp_path_factory.mktemp("agent-desk-service")
    cert_block, install_block = (b for b in blocks("sh") if "deploy.certificates" in b or "pip install" in b)
    done = sh(as_written(cert_block, mesh), folder)
    assert done.returncode == 0, done.stderr
    assert f"--from-file={Path(mesh.certificates.ca_file).parent}/secrets/client-{TEAM}-tls/" in done.stdout
    done = sh(as_written(install_block, mesh), folder)
    assert done.returncode == 0, done.stderr
    return folder


def client_secret(mesh, certificates: MeshCertificates, name: str) -> Path:
    """A client's certificate folder as its Secret mounts it (`deploy.certificates --clients-only`)."""
    return secret_folders(mesh.topology, certificates, (name,), members_too=False)[f"client-{name}-tls"]


def environment(mesh) -> str:
    [exports] = [b for b in blocks("sh") if b.startswith("export TILORES_X_ADDR")]
    return as_written(exports, mesh)


def run_python(team: Path, mesh, name: str, source: str) -> subprocess.CompletedProcess[str]:
    (team / name).write_text(source)
    return sh(environment(mesh) + as_written(block_after(f".venv/bin/python {name}"), mesh), team)


def test_the_service_environment_holds_the_package_and_nothing_of_the_mesh(team: Path):
    listed = sh(".venv/bin/python -m pip list --format json", team)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "tilores-x-client" in names
    assert not names & {"grpcio-tools", "redis", "fastapi", "openai", "pytest"}, names
    # The stubs are the package's own, typed.
    found = sh(".venv/bin/python -c 'import tilores_x.v1.router_pb2 as r; print(r.__file__)'", team)
    assert "/.venv/" in found.stdout and str(REPO) not in found.stdout
    assert list((team / ".venv").glob("lib/python3*/site-packages/tilores_x/v1/router_pb2.pyi"))


def test_ask_py_streams_a_grounded_answer_with_the_teams_certificate(team: Path, mesh, customers):
    [ask, _] = blocks("python")
    done = run_python(team, mesh, "ask.py", ask)
    assert done.returncode == 0, done.stderr
    edwina = next(c for c in customers if c.records[0]["EMAIL"] == EDWINA)
    answer = done.stdout
    assert "Edwina Hawthorne" in answer
    for fact in grounded_facts(edwina):
        assert re.search(fact, answer), (fact, answer)
    assert re.search(r"\n\[model offline, chatcmpl-[0-9a-f]{24}\]\n$", answer)


def test_credit_py_prints_the_report_and_the_named_errors(team: Path, mesh):
    [_, credit] = blocks("python")
    done = run_python(team, mesh, "credit.py", credit)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Edwina Hawthorne scored"  # she has scores from three bureaus
    assert lines[1] == "not found: no customer matches email nobody@example.com"
    assert lines[2].startswith("not allowed: PERMISSION_DENIED ") and "'customers.read'" in lines[2]


def test_the_node_service_streams_a_grounded_answer_with_the_teams_certificate(team: Path, mesh, customers):
    [node] = [b for b in blocks("sh") if "npm run chat" in b]
    done = sh(as_written(node, mesh), team, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    edwina = next(c for c in customers if c.records[0]["EMAIL"] == EDWINA)
    answer = done.stdout.split("src/chat.ts", 1)[1]
    assert "Edwina Hawthorne" in answer
    for fact in grounded_facts(edwina):
        assert re.search(fact, answer), (fact, answer)
    assert re.search(r"\n\[model offline, chatcmpl-[0-9a-f]{24}\]\n", answer)
    # The service type-checks against the stubs it generated (`npm run check`, as the page says).
    checked = sh("npm run check", REPO / "clients" / "node")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_node_service_names_a_missing_scope_and_exits_1(team: Path, mesh):
    [node] = [b for b in blocks("sh") if "npm run chat" in b]
    command = as_written(node, mesh).split("npm run generate\n", 1)[1]  # installed and generated above
    folder = client_secret(mesh, mesh.certificates, "holds-audit.read")
    command = re.sub(r"TILORES_X_TLS_DIR=\S+", f"TILORES_X_TLS_DIR={folder}", command)
    done = sh(f"cd {REPO / 'clients' / 'node'}\n" + command, team)
    assert done.returncode == 1
    assert "PermissionDenied: client/holds-audit.read does not hold the scope 'chat'" in done.stderr


def grounded_facts(customer) -> list[str]:
    """What the answer must say from the customer's records, as patterns:
    her account status and each bureau's newest credit score."""
    status = next(r["STATUS"] for r in customer.records if r.get("STATUS"))
    newest: dict[str, tuple[str, str]] = {}
    for record in customer.records:
        report = record.get("CREDIT_RESPONSE")
        if report:
            issued, bureau = report["CreditReportFirstIssuedDate"], report["CREDIT_BUREAU"]
            if issued > newest.get(bureau, ("", ""))[0]:
                newest[bureau] = (issued, report["CREDIT_SCORE"][0]["Value"])
    assert newest, "the sample customer has credit reports"
    return [
        rf"Account status: {status} \[record ",
        *(rf"{b} credit score[^:]*: {v} \[record " for b, (_, v) in newest.items()),
    ]


CHECKS = textwrap.dedent(
    """
    import asyncio, json, sys

    from tilores_x_client import MeshClient, InvalidArgument, NotAllowed


    async def main() -> None:
        out = {}
        async with MeshClient.from_env() as mesh:
            answer = mesh.chat("What is the status of edwina.hawthorne@example.com?")
            deltas = [delta async for delta in answer]
            result = answer.result
            out["deltas"] = len(deltas)
            out["text_is_deltas"] = "".join(deltas) == result.text
            out["result"] = [result.model, result.finish_reason, result.completion_id, result.usage.total_tokens]
            try:
                mesh.chat([{"role": "robot", "content": "hi"}])
            except InvalidArgument as error:
                out["local"] = [error.code.name, error.field]
            try:
                await mesh.credit("")
            except InvalidArgument as error:
                out["server"] = [error.code.name, error.field, error.message]
            try:
                await mesh.prompts()
            except NotAllowed as error:
                out["scope"] = error.message
        print(json.dumps(out))


    asyncio.run(main())
    """
)


def test_the_client_streams_deltas_then_the_whole_result_and_names_the_field(team: Path, mesh):
    (team / "checks.py").write_text(CHECKS)
    done = sh(environment(mesh) + ".venv/bin/python checks.py", team)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["deltas"] > 5 and out["text_is_deltas"]
    model, finish, completion_id, tokens = out["result"]
    assert (model, finish) == ("offline", "stop") and completion_id.startswith("chatcmpl-") and tokens > 0
    assert out["local"] == ["INVALID_ARGUMENT", "messages[0].role"]
    assert out["server"][:2] == ["INVALID_ARGUMENT", "identifier"], out["server"]
    assert "'prompts.read'" in out["scope"]


OPERATOR = textwrap.dedent(
    """
    import asyncio, json

    from tilores_x_client import MeshClient, NotFound


    async def main() -> None:
        out = {}
        async with MeshClient.from_env() as mesh:
            [entity] = await mesh.search_customers({"EMAIL": "edwina.hawthorne@example.com"})
            view = await mesh.customer_360(entity.id)
            report = await mesh.credit_report(entity.id)
            found = await mesh.find_customers("edwina.hawthorne@example.com")
            answer = mesh.chat("What is the credit score of edwina.hawthorne@example.com?")
            result = await answer.collect()
            await asyncio.sleep(0)
            await mesh.feedback(result.completion_id, thumbs_up=True, comment="exact")
            try:
                await mesh.feedback("chatcmpl-nosuchanswer", thumbs_up=False, timeout=8)
            except NotFound as error:
                out["no_answer"] = error.code.name
            prompts = await mesh.prompts()
            customer = await mesh.prompt("customer")
            quality = await mesh.quality()
            out.update(
                name=view.customer_name,
                report_entity=report.entity_id == entity.id,
                bureaus=len(report.bureaus),
                found=[(c.entity_id == entity.id, c.name) for c in found],
                prompts=sorted(p.name for p in prompts),
                customer_version=customer.version,
                quality=type(quality).__name__,
            )
        print(json.dumps(out))


    asyncio.run(main())
    """
)


def test_the_plain_methods_with_a_certificate_holding_their_scopes(team: Path, mesh):
    # The operator's certificate holds every scope: its folder as a Secret would mount it.
    folder = client_secret(mesh, mesh.certificates, "operator")
    (team / "back_office.py").write_text(OPERATOR)
    env = re.sub(r"TILORES_X_TLS_DIR=.*", f"TILORES_X_TLS_DIR={folder}", environment(mesh))
    done = sh(env + ".venv/bin/python back_office.py", team)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["name"] == "Edwina Hawthorne" and out["report_entity"] and out["bureaus"] >= 1
    assert out["found"] == [[True, "Edwina Hawthorne"]]
    assert "customer" in out["prompts"] and out["customer_version"] >= 1
    assert out["no_answer"] == "NOT_FOUND"
    assert out["quality"] == "GetQualityResponse"


FOREIGN = textwrap.dedent(
    """
    import asyncio

    from tilores_x_client import MeshClient, Unavailable


    async def main() -> None:
        async with MeshClient.from_env() as mesh:
            try:
                await mesh.chat("What is the status of edwina.hawthorne@example.com?").collect()
            except Unavailable as error:
                print("unavailable:", error.message)


    asyncio.run(main())
    """
)


def test_a_certificate_another_ca_signed_fails_before_any_call(team: Path, mesh, tmp_path: Path):
    # The team's name, the mesh's CA to check the server with, but signed by a CA of its own.
    folder = client_secret(mesh, MeshCertificates(tmp_path / "another-ca"), TEAM)
    (folder / "ca.crt").write_bytes(Path(mesh.certificates.ca_file).read_bytes())
    (team / "forged.py").write_text(FOREIGN)
    env = re.sub(r"TILORES_X_TLS_DIR=.*", f"TILORES_X_TLS_DIR={folder}", environment(mesh))
    done = sh(env + ".venv/bin/python forged.py", team)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("unavailable: failed to connect to all addresses"), done.stdout
    assert "Edwina" not in done.stdout
