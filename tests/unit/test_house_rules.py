"""The house rules of the design, held by walking every module's imports:
the runtime imports no service; a service imports no other service; domain
modules (everything but a service's `__main__`, `service`, `clients` and
`wire`) import neither grpc nor the generated stubs; the gateway imports only
stubs, the runtime and itself; deploy imports no service (the runtime's
shared vocabulary, such as who a member of the mesh is, it may); and no module
imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "gateway", "deploy")
# Modules whose job is to speak gRPC: servers, their wiring and the adapters.
WIRING = {"__main__", "service", "clients", "wire"}
GRPC = ("grpc", "grpc_health", "grpc_reflection", "grpc_status", "tilores_x", "google.rpc", "google.protobuf")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


IMPORTS = {name: _imports(path) for name, path in MODULES.items()}


def _service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 1 else None


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_runtime_imports_no_service_gateway_or_deploy():
    broken = {
        module: sorted(
            i for i in imports if _within(i, ("gateway", "deploy")) or _service_of(i) not in (None, "runtime")
        )
        for module, imports in IMPORTS.items()
        if _service_of(module) == "runtime"
    }
    assert not {m: i for m, i in broken.items() if i}


def test_a_service_imports_no_other_service():
    broken = {}
    for module, imports in IMPORTS.items():
        own = _service_of(module)
        if own in (None, "runtime"):
            continue
        others = sorted(i for i in imports if _service_of(i) not in (None, "runtime", own))
        others += sorted(i for i in imports if _within(i, ("gateway", "deploy")))
        if others:
            broken[module] = others
    assert not broken


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _service_of(m) not in (None, "runtime")))
def test_domain_modules_speak_no_grpc(module):
    if module.rsplit(".", 1)[-1] in WIRING or module.count(".") == 1:
        return  # a server, its wiring, an adapter, or the package itself
    assert not sorted(i for i in IMPORTS[module] if _within(i, GRPC)), module


def test_the_gateway_imports_only_stubs_the_runtime_and_itself():
    broken = {
        module: sorted(i for i in imports if _within(i, ("services", "deploy")) and _service_of(i) != "runtime")
        for module, imports in IMPORTS.items()
        if module.startswith("gateway")
    }
    assert not {m: i for m, i in broken.items() if i}


def test_deploy_imports_no_service_and_no_gateway():
    broken = {
        module: sorted(i for i in imports if _within(i, ("gateway",)) or _service_of(i) not in (None, "runtime"))
        for module, imports in IMPORTS.items()
        if module.startswith("deploy")
    }
    assert not {m: i for m, i in broken.items() if i}


def test_no_import_cycles():
    graph = {
        module: {i for i in imports if i in MODULES and i != module}
        | {i.rsplit(".", 1)[0] for i in imports if i.rsplit(".", 1)[0] in MODULES and i.rsplit(".", 1)[0] != module}
        for module, imports in IMPORTS.items()
    }
    # Packages' own __init__ modules are empty here; drop edges to them.
    graph = {m: {d for d in deps if MODULES[d].name != "__init__.py"} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dependency in sorted(graph[module]):
            if state.get(dependency) == 1:
                cycles.append(
                    [*path[path.index(dependency) :], dependency] if dependency in path else [module, dependency]
                )
            elif dependency not in state:
                visit(dependency, [*path, dependency])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles
