"""The documentation as a set: a short README that leads to every page of
docs/, every relative link resolving (to a file, and to a heading where it
names one), and every shell block marked `<!-- runnable -->` running as
written. The examples that need a running mesh are run as written by the
end-to-end tests that own them (tests/docs.py finds them)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.docs import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_RUNNABLE = re.compile(r"<!-- runnable -->\n```sh\n(.*?)```", re.S)


def _prose(text: str) -> str:
    """The text outside code blocks."""
    return "".join(part for n, part in enumerate(re.split(r"^```.*$", text, flags=re.M)) if n % 2 == 0)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    return {_slug(line.lstrip("#")) for line in _prose(text).splitlines() if re.match(r"#{1,6} ", line)}


def test_the_readme_is_short_and_leads_to_every_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    linked = set(_LINK.findall(_prose(readme)))
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in linked, f"README does not link {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = page.read_text()
    for target in _LINK.findall(_prose(text)):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target} names no file"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved.read_text()), f"{page.name}: {target} names no heading"


def _runnable() -> list[tuple[str, str]]:
    return [(page.name, block) for page in PAGES for block in _RUNNABLE.findall(page.read_text())]


def test_there_are_runnable_blocks():
    assert len(_runnable()) >= 2


@pytest.mark.parametrize(("page", "block"), _runnable(), ids=lambda v: v if v.endswith(".md") else "")
@pytest.mark.timeout(600)
def test_each_runnable_block_runs_as_written(page, block, tmp_path):
    # Data the commands write goes to a scratch folder, not the developer's .data.
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "CUSTOMERS": "50"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=REPO, env=env, capture_output=True,
                          text=True, check=False, timeout=600)  # fmt: skip
    assert done.returncode == 0, f"{page}: {block}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
