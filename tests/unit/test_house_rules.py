"""The house rules of the design, held by walking every module's imports
(absolute, relative and `importlib.import_module("…")` alike): the runtime
imports no service; a service imports no other service; domain modules
(everything but a service's `__main__`, `service`, `clients`, `wire` and
its adapters in `peers/`) reach neither grpc nor the generated stubs, not
even through the modules they import; the gateway imports only stubs, the
runtime and itself; deploy imports no service (the runtime's shared
vocabulary, such as who a member of the mesh is, it may); and no module
imports itself back through others."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "gateway", "deploy")
# Modules whose job is to speak gRPC: servers, their wiring and the adapters.
WIRING = {"__main__", "service", "clients", "wire", "peers"}
GRPC = ("grpc", "grpc_health", "grpc_reflection", "grpc_status", "tilores_x", "google.rpc", "google.protobuf")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package up
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if base:
                names.add(base)
            names.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


IMPORTS = {name: _imports(path, name) for name, path in MODULES.items()}


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


def _wiring(module: str) -> bool:
    """A server, its wiring, an adapter, or a service package itself."""
    return bool(set(module.split(".")[2:]) & WIRING) or module.count(".") == 1


def _repo_imports(module: str) -> set[str]:
    """The modules of this repository `module` imports (a name imported
    from a package is its module when it is one)."""
    return {i for i in IMPORTS[module] if i in MODULES and i != module}


def _grpc_path(module: str) -> list[str] | None:
    """The chain of imports by which `module` reaches grpc or a stub, if any."""
    seen, queue = {module}, [[module]]
    while queue:
        path = queue.pop(0)
        direct = sorted(i for i in IMPORTS[path[-1]] if _within(i, GRPC))
        if direct:
            return [*path, direct[0]]
        for dependency in sorted(_repo_imports(path[-1]) - seen):
            seen.add(dependency)
            queue.append([*path, dependency])
    return None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _service_of(m) not in (None, "runtime")))
def test_domain_modules_reach_no_grpc(module):
    if _wiring(module):
        return
    assert _grpc_path(module) is None, " -> ".join(_grpc_path(module))


def test_the_rule_follows_imports_through_other_modules(tmp_path, monkeypatch):
    """A planted `import grpc` in a runtime module a domain module uses is
    found, as are relative imports and importlib."""
    planted = dict(IMPORTS)
    planted["services.runtime.conversation"] = IMPORTS["services.runtime.conversation"] | {"grpc"}
    monkeypatch.setattr(sys.modules[__name__], "IMPORTS", planted)
    assert _grpc_path("services.router.turn") is not None
    source = tmp_path / "services" / "router" / "example.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from . import turn\nfrom ..runtime import faults\nimport importlib\nimportlib.import_module('grpc')\n"
    )
    found = _imports(source, "services.router.example")
    assert {"services.router.turn", "services.runtime.faults", "grpc"} <= found


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
