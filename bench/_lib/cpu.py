"""CPU per process group, from /proc: which process is the bottleneck, and whether the machine was quiet.

Groups are made by process title ("gateway router", "gateway <container>",
"crossbar-controller"), not by container name, so that a change in how
components are spread over containers does not break a benchmark.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

__all__ = ["BARE_ROUTER_TITLE", "CpuMeter", "Groups", "by_role", "by_title", "node_processes",
           "process_title", "settle"]

#: pid lists by group name.
Groups = dict[str, list[int]]

#: Title of the bare Crossbar node's router process (``nodes.BareRouter``).
BARE_ROUTER_TITLE = "bench bare router"
ROUTER_TITLES = frozenset({"gateway router", BARE_ROUTER_TITLE})
CONTROLLER_TITLE = "crossbar-controller"

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat, first line)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    # guest time is already counted in user/nice: sum only the first 8 fields.
    return (sum(ticks[:8]) - idle) / _CLK_TCK


def process_title(pid: int) -> str | None:
    """The process's command line as one string (what setproctitle set); None if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def _group_titles(pgid: int) -> dict[int, str]:
    """pid -> title of every process in the process group (a node runs in its own)."""
    titles: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[2]) != pgid:
                    continue
        except (OSError, ValueError, IndexError):
            continue
        title = process_title(int(entry))
        if title is not None:
            titles[int(entry)] = title
    return titles


def node_processes(pgid: int) -> Groups:
    """A node's processes: ``router`` and ``workers`` (all the others: controller and containers)."""
    groups: Groups = {"router": [], "workers": []}
    for pid, title in _group_titles(pgid).items():
        groups["router" if title in ROUTER_TITLES else "workers"].append(pid)
    return groups


def by_role(pgid: int) -> Groups:
    """A node's processes: ``router``, ``controller`` (which writes the node log) and ``containers``."""
    groups: Groups = {"router": [], "controller": [], "containers": []}
    for pid, title in _group_titles(pgid).items():
        role = "router" if title in ROUTER_TITLES else "controller" if title == CONTROLLER_TITLE else "containers"
        groups[role].append(pid)
    return groups


def by_title(workers: list[int]) -> Groups:
    """Worker pids one group per process title, ``w:<name>`` ("w:components-1", "w:crossbar-controller")."""
    groups: Groups = {}
    for pid in workers:
        title = process_title(pid) or "?"
        name = title.split()[0] if title.startswith("crossbar") else title.removeprefix("gateway ")
        groups.setdefault(f"w:{name}", []).append(pid)
    return groups


class CpuMeter:
    """CPU used between start() and stop(), in % of one core, by group of processes.

    Besides the groups: ``publisher`` is this process; ``other`` is what the
    rest of the machine used meanwhile: on a shared 2-core box another busy
    process changes every figure, and this column is how a reader tells a slow
    gateway from a busy neighbour.
    """

    def __init__(self, groups: Mapping[str, list[int]]) -> None:
        self._groups = dict(groups)
        self._before: dict[str, float] = {}
        self._t0 = 0.0

    def _sample(self) -> dict[str, float]:
        sample = {name: sum(_cpu_seconds(p) for p in pids) for name, pids in self._groups.items()}
        sample["publisher"] = time.process_time()
        sample["machine"] = _machine_busy_seconds()
        return sample

    def start(self) -> None:
        self._before = self._sample()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        elapsed = max(1e-9, time.monotonic() - self._t0)
        used = {k: 100 * (after[k] - self._before[k]) / elapsed for k in after}
        machine = used.pop("machine")
        used["other"] = max(0.0, machine - sum(used.values()))
        return used


def settle(node_groups: Mapping[str, list[int]], limit: float = 15.0) -> tuple[float, float]:
    """Wait until the node is idle; return (node, everything else) CPU % over the last second.

    The workers keep busy for a few seconds after /healthz first answers; a
    phase started then would be charged for it.
    """
    meter = CpuMeter(node_groups)
    deadline = time.monotonic() + limit
    while True:
        meter.start()
        time.sleep(1.0)
        used = meter.stop()
        node = sum(used[name] for name in node_groups)
        if node < 10 or time.monotonic() > deadline:
            return node, used["other"]
