"""What `make run` prints while pip installs: deploy/install_progress.py
between pip and the terminal."""

from __future__ import annotations

import subprocess
import sys

from tests.docs import REPO, doc

# pip as it behaves on a new machine: packages collected, then a long quiet
# stretch while it installs them.
FAKE_PIP = r"""
import sys, time
for name in ("grpcio==1.0", "openai==1.0", "scipy==1.0"):
    print(f"Collecting {name}", flush=True)
    print(f"  Downloading {name}.whl (30 MB)", flush=True)
print("Requirement already satisfied: pip", flush=True)
print("Installing collected packages: grpcio, openai, scipy", flush=True)
time.sleep(2.6)
print("Successfully installed grpcio-1.0 openai-1.0 scipy-1.0", end="", flush=True)
"""


def test_each_package_each_step_and_a_line_while_pip_is_quiet():
    pip = subprocess.Popen([sys.executable, "-c", FAKE_PIP], stdout=subprocess.PIPE)
    shown = subprocess.run(
        [sys.executable, "-m", "deploy.install_progress", "--quiet-s", "1"],
        stdin=pip.stdout,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert pip.wait(timeout=10) == 0
    assert shown[:4] == [
        "Collecting grpcio==1.0",
        "Collecting openai==1.0",
        "Collecting scipy==1.0",
        "installing 3 packages ...",
    ]
    still = [line for line in shown[4:-1] if "pip is still working" in line]
    assert len(still) >= 2 and len(still) == len(shown) - 5, shown
    assert shown[-1] == "Successfully installed grpcio-1.0 openai-1.0 scipy-1.0"
    assert not any("Downloading" in line or "already satisfied" in line for line in shown)


def test_make_run_installs_through_it():
    recipe = doc("Makefile").split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "pip install" in recipe and "| $(PY) -m deploy.install_progress" in recipe
    assert "set -o pipefail" in recipe  # a failed install still fails make
