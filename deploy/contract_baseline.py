"""ContractBaseline: the contracts of the previous release, and `buf
breaking` against them (part of `make lint`, so of `make test`).

Teams call the mesh through stubs generated from `protos/`; a change that
renumbers a field, changes its type or drops a method breaks them on the
wire or in their code. `buf.yaml` names the rules (`breaking:`); this
module picks what to compare with:

1. the newest release tag (`v*`) before HEAD;
2. else the merge base with `main` (or `origin/main`): a branch is checked
   against where it left;
3. else HEAD itself: the first release is its own baseline.

`CONTRACTS_BASELINE=<ref>` names another. The baseline's `protos/` is read
with `git archive`, so a clone of any depth that holds that commit works.

    python -m deploy.contract_baseline            # exit 1 on a breaking change
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUF = REPO / "node_modules" / ".bin" / "buf"
MAINLINES = ("main", "origin/main")


@dataclass(frozen=True)
class ContractBaseline:
    """A commit whose contracts the working tree must stay compatible with."""

    commit: str
    why: str

    @classmethod
    def of(cls, repo: Path, named: str | None = None) -> ContractBaseline:
        if named:
            return cls(_git(repo, "rev-parse", "--verify", f"{named}^{{commit}}"), f"{named}, as CONTRACTS_BASELINE")
        head = _git(repo, "rev-parse", "HEAD")
        if _succeeds(repo, "rev-parse", "--verify", "--quiet", "HEAD^"):
            tag = _maybe(repo, "describe", "--tags", "--abbrev=0", "--match", "v[0-9]*", "HEAD^")
            if tag:
                return cls(_git(repo, "rev-parse", f"{tag}^{{commit}}"), f"the previous release, {tag}")
        for mainline in MAINLINES:
            base = _maybe(repo, "merge-base", "HEAD", mainline)
            if base and base != head:
                return cls(base, f"the merge base with {mainline}")
        return cls(head, "HEAD: no release before it, the first is its own baseline")

    def extract(self, repo: Path, into: Path) -> Path:
        """The baseline's `protos/` (and `buf.yaml`) written under `into`."""
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", self.commit, "protos", "buf.yaml"],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(into, filter="data")
        return into


def breaking_changes(repo: Path, baseline: ContractBaseline) -> subprocess.CompletedProcess[str]:
    """`buf breaking` of the working tree's contracts against the baseline's."""
    with tempfile.TemporaryDirectory(prefix="contracts-") as tmp:
        against = baseline.extract(repo, Path(tmp))
        return subprocess.run(
            [str(BUF), "breaking", "--against", str(against)],
            check=False,
            cwd=repo,
            capture_output=True,
            text=True,
        )


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def _maybe(repo: Path, *args: str) -> str | None:
    done = subprocess.run(["git", "-C", str(repo), *args], check=False, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _succeeds(repo: Path, *args: str) -> bool:
    return subprocess.run(["git", "-C", str(repo), *args], check=False, capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO, help="the git work tree to check (default: this one)")
    args = parser.parse_args(argv)
    baseline = ContractBaseline.of(args.repo, os.environ.get("CONTRACTS_BASELINE") or None)
    done = breaking_changes(args.repo, baseline)
    against = f"{baseline.commit[:12]} ({baseline.why})"
    if done.returncode == 0:
        print(f"buf breaking: the contracts keep every promise of {against}")
        return 0
    sys.stderr.write(done.stdout + done.stderr)
    sys.stderr.write(
        f"buf breaking: the contracts above break callers of {against}.\n"
        "Keep the old field or method (mark it deprecated), or make the change in a new package "
        "(protos/tilores_x/v2) beside v1: see docs/clients.md#how-the-contracts-evolve.\n"
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
