"""docs/gateway.service, the systemd unit docs/operations.md documents, checked against the code it runs: its
ExecStart is a ``gateway run`` that the real argument parser (components/cli.py) accepts, its paths fit
what ``gateway run`` needs, its stop and restart settings fit what ``gateway run`` does on a signal and
with its exit statuses (components/supervision/), and its environment names only known overrides and no
secret. With ``systemd-analyze`` on the machine, ``systemd-analyze verify`` must accept it too."""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import subprocess
import tomllib
from pathlib import Path

import pytest

from components import cli
from components.config import ENV_OVERRIDES, BridgeConfig
from components.supervision import EXIT_START_FAILED, EXIT_STOPPED, Settings
from components.supervision.supervisor import STOP_SIGNALS

REPO = Path(__file__).resolve().parents[2]
UNIT_FILE = REPO / "docs" / "gateway.service"
#: Where the unit expects the checkout (its header says so).
CHECKOUT = "/opt/events-gateway"
#: Environment variables that hold secrets: the env file (mode 0600), never the unit (``systemctl show`` prints it).
SECRET_VARIABLES = {"GATEWAY_API_KEY", "GATEWAY_SECRET", "GATEWAY_BACKEND_SECRET", "GATEWAY_STORE_URL",
                    "GATEWAY_AMQP_URL"}

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Unit:
    """Each section's (key, value) lines in order, repeated keys kept (as systemd reads them; comments,
    blank lines and backslash continuations handled)."""
    unit: Unit = {}
    section: list[tuple[str, str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], [])
            continue
        key, equals, value = line.partition("=")
        assert equals and section is not None, f"not a unit-file line: {raw!r}"
        section.append((key.strip(), value.strip()))
    assert not pending, "the file ends inside a continued line"
    return unit


UNIT = parse_unit(UNIT_FILE.read_text())


def values(section: str, key: str) -> list[str]:
    return [v for k, v in UNIT.get(section, []) if k == key]


def one(section: str, key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"[{section}] {key}= is set {len(found)} times: {found}"
    return found[0]


def seconds(value: str) -> float:
    """A systemd time span as this unit writes them: plain seconds, or with an s/min suffix."""
    if value.endswith("min"):
        return float(value[:-3]) * 60
    return float(value.removesuffix("s"))


def parsed_exec_start(monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """ExecStart's arguments as ``gateway``'s own parser reads them (what ``gateway run`` would run with)."""
    seen: list[argparse.Namespace] = []

    def run(args: argparse.Namespace) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(cli, "_run", run)  # the parser, not the node: main() looks _run up when it is called
    argv = shlex.split(one("Service", "ExecStart"))
    assert cli.main(argv[1:]) == 0
    (args,) = seen
    return args


def test_the_sections_are_the_three_a_service_needs() -> None:
    assert list(UNIT) == ["Unit", "Service", "Install"]
    assert one("Install", "WantedBy") == "multi-user.target"


def test_exec_start_runs_the_installed_gateway_command_of_the_checkout() -> None:
    argv = shlex.split(one("Service", "ExecStart"))
    working_directory = one("Service", "WorkingDirectory")
    assert working_directory == CHECKOUT
    # The console script pyproject.toml installs into the checkout's virtualenv.
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["gateway"] == "components.launcher:main"
    assert argv[0] == f"{working_directory}/.venv/bin/gateway"
    assert argv[1] == "run"


def test_exec_start_flags_are_accepted_by_the_gateway_commands_own_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parsed_exec_start(monkeypatch)
    assert args.command == "run"
    working_directory = Path(one("Service", "WorkingDirectory"))
    # gateway run takes the checkout (its pages, its event definitions) as the config file's directory.
    assert Path(args.config) == working_directory / "gateway.yaml"
    # The node directory (rendered config with the backend secret, unix socket, SQLite store, access log)
    # must be writable under ProtectSystem=strict: inside a ReadWritePaths entry.
    assert one("Service", "ProtectSystem") == "strict"
    writable = [Path(p.lstrip("-")) for v in values("Service", "ReadWritePaths") for p in v.split()]
    assert any(Path(args.cbdir).is_relative_to(p) for p in writable), (args.cbdir, writable)


def test_a_flag_the_parser_does_not_know_would_be_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: the real parser refuses what it does not define."""
    monkeypatch.setattr(cli, "_run", lambda args: 0)
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--config", "/x/gateway.yaml", "--node-dir", "/y"])
    assert exc.value.code == 2


def test_stopping_signals_gateway_run_only_and_waits_longer_than_it_does() -> None:
    # mixed: SIGTERM to `gateway run` alone, which stops the node in order; SIGKILL to what is left of the
    # cgroup after TimeoutStopSec. (control-group would work too, without that order; process or none would
    # leave Crossbar's processes behind.) docs/operations.md documents mixed.
    assert one("Service", "KillMode") == "mixed"
    assert getattr(signal, one("Service", "KillSignal")) in STOP_SIGNALS
    # gateway run drains the node (bridge.drain_timeout at its default), then gives Crossbar stop_grace seconds
    # before it kills the node's group itself.
    assert seconds(one("Service", "TimeoutStopSec")) > BridgeConfig().drain_timeout + Settings().stop_grace
    assert one("Service", "Type") in ("exec", "simple")  # gateway run stays in the foreground: no forking


def test_a_failed_start_is_restarted_and_a_clean_stop_is_not() -> None:
    # gateway run exits EXIT_START_FAILED when the node never served, EXIT_STOPPED when asked to stop.
    assert (EXIT_STOPPED, EXIT_START_FAILED) == (0, 1)
    assert one("Service", "Restart") == "on-failure"  # nonzero exit, or killed by a signal; not exit 0
    assert not values("Service", "SuccessExitStatus") and not values("Service", "RestartPreventExitStatus")
    assert seconds(one("Service", "RestartSec")) > 0, "not in a tight loop"
    # ...and for as long as it takes: no start limit that would make systemd give up.
    assert one("Unit", "StartLimitIntervalSec") == "0"


def test_the_environment_sets_only_known_overrides_and_no_secret() -> None:
    names = [v.partition("=")[0] for line in values("Service", "Environment") for v in shlex.split(line)]
    gateway = {n for n in names if n.startswith("GATEWAY_")}
    assert gateway and gateway <= set(ENV_OVERRIDES), gateway - set(ENV_OVERRIDES)
    assert not gateway & SECRET_VARIABLES, "secrets go in the env file, not the unit"
    assert SECRET_VARIABLES <= set(ENV_OVERRIDES)
    (env_file,) = values("Service", "EnvironmentFile")
    assert env_file.startswith("-/"), "optional (a leading -) and absolute"
    assert "PYTHONUNBUFFERED=1" in names or "PYTHONUNBUFFERED" in names


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_it_for_this_checkout(tmp_path: Path) -> None:
    """With the checkout's paths pointed at this one (the only complaint otherwise: no gateway command
    in /opt), systemd's own checker finds nothing wrong."""
    unit = tmp_path / "events-gateway.service"
    unit.write_text(UNIT_FILE.read_text().replace(CHECKOUT, str(REPO)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), (done.stdout, done.stderr)
