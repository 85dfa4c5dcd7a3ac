"""CPU and resident memory of every process of the node, found by the titles the node config gives them.

The bridge's process is a container worker: its parent is Crossbar's controller, whose children are the
router (``gateway router``) and the containers (``gateway components-<n>``). The label is the title
without ``gateway ``; the controller is ``controller``.
"""

from __future__ import annotations

import os

import psutil

from components.metrics.families import PROCESS_CPU, PROCESS_RSS
from components.metrics.meter import Labels

TITLE_PREFIX = "gateway "


def process_label(title: str) -> str | None:
    """``router``, ``components-1``, ...: the label of a process titled so; None for no process of ours."""
    title = title.strip()
    if title.startswith("crossbar-controller"):
        return "controller"
    return title[len(TITLE_PREFIX):].split()[0] if title.startswith(TITLE_PREFIX) and title[len(TITLE_PREFIX):] \
        else None


def own_label() -> str:
    """This process's label (its container's name), ``pid-<pid>`` outside a node."""
    try:
        label = process_label(" ".join(psutil.Process().cmdline()))
    except psutil.Error:
        label = None
    return label or f"pid-{os.getpid()}"


def node_processes() -> list[tuple[str, Labels, float]]:
    """(family, labels, value) of CPU seconds and RSS of the controller and its labelled children."""
    readings: list[tuple[str, Labels, float]] = []
    try:
        controller = psutil.Process().parent()
        processes = [controller, *controller.children()] if controller is not None else []
    except psutil.Error:
        return readings
    for process in processes:
        try:
            with process.oneshot():
                label = process_label(" ".join(process.cmdline()))
                if label is None:
                    continue
                cpu = process.cpu_times()
                labels: Labels = (("process", label),)
                readings.append((PROCESS_CPU, labels, cpu.user + cpu.system))
                readings.append((PROCESS_RSS, labels, float(process.memory_info().rss)))
        except psutil.Error:
            continue  # gone meanwhile
    return readings
