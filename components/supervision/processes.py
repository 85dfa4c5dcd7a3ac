"""The Crossbar node as processes: start it in a process group of its own, look at it, stop all of it.

``crossbar start`` becomes the node's controller; it starts the router and the
container workers as its children, in its process group. The node gets a
process group of its own (not a session: a test or a shell can still find it in
``gateway run``'s session), so that one SIGKILL reaches every worker, even one
whose controller is already gone, and so that Ctrl-C in a terminal reaches
``gateway run`` only: it is the one that stops the node, in order.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psutil

from components.supervision.policy import DrainSeen, DrainUnanswered, NoBridge, Observation, read_drain_answer

#: prctl(2) option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Endpoint:
    """Where the supervisor probes a listening port (a wildcard bind is probed on loopback)."""

    host: str
    port: int

    @classmethod
    def of(cls, host: str, port: int) -> Endpoint:
        return cls({"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port)


def serving(router: Endpoint, bridge: Endpoint, timeout: float = 2.0) -> bool:
    """The router port accepts connections and the bridge's ``GET /healthz`` answers 200."""
    try:
        with socket.create_connection((router.host, router.port), timeout=timeout):
            pass
    except OSError:
        return False
    conn = http.client.HTTPConnection(bridge.host, bridge.port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass(frozen=True)
class BridgeDrain:
    """``POST /admin/drain`` to the node's bridge, with an API key (``bridge.api_keys``' first): every bridge of
    the node takes no new event from then on, and the answer says what each still holds. Asked again, the
    same: the supervisor asks until nothing is left (``policy.drain_step``)."""

    bridge: Endpoint
    api_key: str = field(repr=False)

    def __call__(self, timeout: float) -> DrainSeen:
        conn = http.client.HTTPConnection(self.bridge.host, self.bridge.port, timeout=timeout)
        try:
            conn.request("POST", "/admin/drain", b"", {"Authorization": f"Bearer {self.api_key}",
                                                       "Content-Length": "0"})
            response = conn.getresponse()
            return read_drain_answer(response.status, response.read())
        except ConnectionRefusedError:
            return NoBridge(f"{self.bridge.host}:{self.bridge.port} refuses connections")
        except (OSError, http.client.HTTPException) as exc:
            return DrainUnanswered(f"POST /admin/drain to {self.bridge.host}:{self.bridge.port}: "
                                   f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()


def _dying_with(parent: int) -> Callable[[], None]:
    def die_with_parent() -> None:  # runs in the child, between fork and exec
        # Should `gateway run` itself be killed (kill -9, the OOM killer), its node must not live
        # on holding the ports: the controller then gets SIGTERM and stops its workers.
        if sys.platform == "linux":
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
            if os.getppid() != parent:  # it died before the line above
                os.kill(os.getpid(), signal.SIGTERM)
    return die_with_parent


class NodeProcess:
    """One run of ``crossbar start``: its controller and the workers in its process group."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self._argv = list(argv)
        self._env = dict(env) if env is not None else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the node was not started")
        return self._proc.pid

    def start(self) -> None:
        # Output goes where `gateway run`'s goes (a terminal, the journal); stdin is not the terminal's.
        self._proc = subprocess.Popen(self._argv, stdin=subprocess.DEVNULL, env=self._env, process_group=0,
                                      preexec_fn=_dying_with(os.getpid()))

    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def workers(self) -> dict[str, int]:
        """The controller's live child processes: PID by process title."""
        found: dict[str, int] = {}
        try:
            children = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return found
        for child in children:
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                # A title set by setproctitle is the whole command line, padded.
                found[" ".join(part for part in child.cmdline() if part).strip()] = child.pid
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def observe(self, probe: tuple[Endpoint, Endpoint] | None = None) -> Observation:
        """What the node looks like now; ``probe``: (router, bridge) to check that it serves."""
        code = self.exit_code()
        if code is not None:
            return Observation(code, frozenset())
        workers = frozenset(self.workers())
        return Observation(None, workers, None if probe is None else serving(*probe))

    def stop(self, grace: float, wait: float = 15.0) -> None:
        """SIGTERM to the controller (unless ``grace`` is 0), SIGKILL to the whole group once it
        exited or after ``grace`` seconds; returns once no process of the group is left (or after
        ``wait`` more seconds: a process the kernel cannot kill is not waited for).

        The controller stops its workers itself on SIGTERM (it signals each and waits for it), in
        half a second for a healthy node; SIGKILL then takes whatever it left behind.
        """
        if self._proc is None:
            return
        pgid = self._proc.pid
        if grace > 0 and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self._proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        # Workers outlive a controller that did not stop them in time (or that was killed).
        _signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + wait
        try:
            # Reaped before anything else: a controller left as a zombie still holds its PID, which
            # the node directory's pid file names, and the next `crossbar start` fails on it (it
            # reads the zombie's command line: psutil.ZombieProcess, exit code 1).
            self._proc.wait(wait)
        except subprocess.TimeoutExpired:
            pass
        while time.monotonic() < deadline:
            if not group_members(pgid):
                return
            time.sleep(0.05)


def group_members(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes in a process group."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
