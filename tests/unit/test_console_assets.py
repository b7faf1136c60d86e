"""The console's libraries are the npm packages' own files, unchanged, and
the gateway serves only the console's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.console import FOLDER, _assets

ROOT = Path(__file__).resolve().parents[2]
VENDORED = {
    "vendor/uPlot.iife.min.js": "node_modules/uplot/dist/uPlot.iife.min.js",
    "vendor/uPlot.min.css": "node_modules/uplot/dist/uPlot.min.css",
    "vendor/diff.min.js": "node_modules/diff/dist/diff.min.js",
}


@pytest.mark.parametrize("served, package", VENDORED.items())
def test_vendored_libraries_are_the_npm_packages_files(served, package):
    source = ROOT / package
    assert source.exists(), "node_modules is missing: `make test` installs it (npm ci)"
    assert (FOLDER / served).read_bytes() == source.read_bytes(), f"run `make console-assets`: {served} differs"


def test_the_console_serves_its_page_script_styles_and_libraries_only():
    assert sorted(_assets()) == sorted(["console.css", "console.js", *VENDORED])
    page = (FOLDER / "index.html").read_text()
    # Every file the page loads is one of them, from the mesh itself.
    for name in ("console.css", "console.js", *VENDORED):
        assert f'"/console/{name}"' in page, name
    assert "http://" not in page and "https://" not in page
