"""What the benchmarks print: the header line, Markdown tables, rates and CPU cells."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from bench._lib.publishers import Load

__all__ = ["cpu_cell", "fmt_rate", "header", "print_problems", "print_settled", "table", "table_head", "table_row"]


def header(name: str, settings: str) -> str:
    """``# <name> benchmark, <date>, <host>, <n> CPUs, Python <v>; <settings>``: what a reader needs to
    compare two runs."""
    return (f"# {name} benchmark, {date.today()}, {platform.node()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}; {settings}")


def fmt_rate(x: float) -> str:
    return f"{x / 1000:.1f}k" if x >= 10_000 else f"{x:,.0f}"


def cpu_cell(cpu: Mapping[str, float], keys: Sequence[str]) -> str:
    """``12 / 34 / …``: % of one core for each key, in order (0 for a group that was not measured)."""
    return " / ".join(f"{cpu.get(k, 0):.0f}" for k in keys)


def table_head(head: str) -> list[str]:
    """The head row (``| a | b |``) and its separator."""
    return [head, "|" + "---|" * (head.count("|") - 1)]


def table_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(head: str, rows: Iterable[Iterable[str]]) -> str:
    return "\n".join([*table_head(head), *(table_row(cells) for cells in rows)])


def print_settled(when: str, node: float, other: float) -> None:
    """After ``cpu.settle``: how busy the node and the rest of the machine were."""
    print(f"# {when}: node {node:.0f}%, rest of the machine {other:.0f}% of one core"
          + (" -- something else is running: expect lower, noisier figures" if other > 15 else ""), flush=True)


def print_problems(load: Load, lost: Iterable[str] = ()) -> None:
    """Under a row's progress line: subscriber sessions lost, publisher errors and notes."""
    for reason in sorted(set(lost)):
        print(f"#   lost subscriber session: {reason}", flush=True)
    for error, count in load.errors.items():
        print(f"#   publisher error x{count}: {error}", flush=True)
    for note in load.notes:
        print(f"#   publisher: {note}", flush=True)
