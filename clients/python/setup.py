"""Builds the wheel with `tilores_x.v1` generated from `protos/` (a link to
the repository's contracts): messages, gRPC stubs and `.pyi` types, made by
the grpcio-tools that pyproject.toml pins for the build. Nothing generated
is kept in git, so the package always carries the contracts it was built
from."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from grpc_tools import protoc  # a build requirement (pyproject.toml)
from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTOS = HERE / "protos"


class BuildWithStubs(build_py):
    def run(self) -> None:
        super().run()
        out = Path(self.build_lib)
        well_known = resources.files("grpc_tools") / "_proto"
        files = sorted(str(path.relative_to(PROTOS)) for path in PROTOS.rglob("*.proto"))
        if not files:
            raise SystemExit(f"no contracts under {PROTOS}: build from the repository's clients/python")
        argv = ["protoc", f"-I{PROTOS}", f"-I{well_known}"]
        argv += [f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *files]
        if protoc.main(argv) != 0:
            raise SystemExit("protoc failed on protos/")
        for package in ("tilores_x", "tilores_x/v1"):
            (out / package / "__init__.py").touch()
        (out / "tilores_x" / "py.typed").touch()


setup(cmdclass={"build_py": BuildWithStubs})
