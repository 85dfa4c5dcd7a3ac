"""The ``gateway`` command without the server extra says what to install, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(blocked: str) -> subprocess.CompletedProcess[str]:
    # A module set to None in sys.modules cannot be imported: as if it were not installed.
    script = (f"import sys; sys.modules[{blocked!r}] = None\n"
              "from components.launcher import main\n"
              "sys.exit(main(['check-config', '--config', 'gateway.yaml']))")
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_a_missing_server_dependency_names_the_extra() -> None:
    done = _run("pydantic")
    assert done.returncode == 2
    assert "pip install 'events-gateway[server]'" in done.stderr
    assert "pydantic is missing" in done.stderr
    assert "Traceback" not in done.stderr


def test_with_everything_installed_the_command_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "components.launcher", "check-config", "--config", "gateway.yaml"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "gateway.yaml: OK" in done.stdout
