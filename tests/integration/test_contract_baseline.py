"""`buf breaking` against the previous release, run as `make lint` runs it,
on a git repository holding this repository's contracts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.contract_baseline import REPO, ContractBaseline

AUDIT = Path("protos/tilores_x/v1/audit.proto")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def check(repo: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.contract_baseline", "--repo", str(repo)],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def released(tmp_path: Path) -> Path:
    """A repository on main whose first commit, these contracts, is tagged v1.0.0."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(REPO / "protos", repo / "protos")
    shutil.copy(REPO / "buf.yaml", repo / "buf.yaml")
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "contracts")
    git(repo, "tag", "v1.0.0")
    (repo / "README.md").write_text("after the release\n")
    commit(repo, "a change that leaves the contracts alone")
    return repo


def edit(repo: Path, path: Path, old: str, new: str) -> None:
    text = (repo / path).read_text()
    assert text.count(old) == 1, old
    (repo / path).write_text(text.replace(old, new))


def test_this_repository_keeps_the_promises_of_its_baseline():
    done = check(REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("buf breaking: the contracts keep every promise of ")


def test_an_unchanged_contract_passes_against_the_release_tag(released: Path):
    done = check(released)
    assert done.returncode == 0, done.stderr
    assert "the previous release, v1.0.0" in done.stdout


def test_a_renumbered_field_fails_naming_it(released: Path):
    edit(released, AUDIT, "string action = 6;", "string action = 16;")
    done = check(released)
    assert done.returncode == 1
    assert re.search(
        r'audit\.proto:\d+:\d+:Previously present field "6" with name "action" on message "AccessRecord"', done.stderr
    )
    assert "the previous release, v1.0.0" in done.stderr
    assert "protos/tilores_x/v2" in done.stderr  # how to make the change on purpose


def test_a_committed_break_still_fails_against_the_release(released: Path):
    # Not only the working tree: a branch of commits is measured against the tag.
    edit(released, AUDIT, "string action = 6;", "string action = 16;")
    commit(released, "renumber")
    assert check(released).returncode == 1


def test_a_field_removed_with_its_number_and_name_reserved_passes(released: Path):
    edit(released, AUDIT, "  string recorded_by = 4;\n", '  reserved 4;\n  reserved "recorded_by";\n')
    assert check(released).returncode == 0


def test_a_field_removed_without_reserving_its_name_fails(released: Path):
    edit(released, AUDIT, "  string recorded_by = 4;\n", "  reserved 4;\n")
    done = check(released)
    assert done.returncode == 1
    assert 'deleted without reserving the name "recorded_by"' in done.stderr


def test_an_added_field_passes(released: Path):
    edit(released, AUDIT, "string action = 6;", "string action = 6;\n  // A new field.\n  string purpose = 11;")
    assert check(released).returncode == 0


def test_without_a_tag_a_branch_is_checked_against_where_it_left_main(tmp_path: Path, released: Path):
    git(released, "tag", "-d", "v1.0.0")
    left_at = git(released, "rev-parse", "HEAD")
    git(released, "checkout", "-q", "-b", "feature")
    edit(released, AUDIT, "string entity_id = 5;", "int64 entity_id = 5;")
    commit(released, "a type changed")
    assert ContractBaseline.of(released) == ContractBaseline(left_at, "the merge base with main")
    done = check(released)
    assert done.returncode == 1 and '"entity_id" on message "AccessRecord" changed type' in done.stderr


def test_the_first_release_is_its_own_baseline(released: Path):
    git(released, "tag", "-d", "v1.0.0")
    head = git(released, "rev-parse", "HEAD")
    assert ContractBaseline.of(released).commit == head
    edit(released, AUDIT, "string action = 6;", "string action = 16;")
    assert check(released).returncode == 1  # the working tree against HEAD


def test_a_named_baseline_wins(released: Path):
    first = git(released, "rev-list", "--max-parents=0", "HEAD")
    baseline = ContractBaseline.of(released, "v1.0.0")
    assert baseline.commit == first and "CONTRACTS_BASELINE" in baseline.why
    done = check(released, CONTRACTS_BASELINE="no-such-ref")
    assert done.returncode != 0
