"""The bridge's access log file: lines collected, appended whole every half second and on close."""

import re
from pathlib import Path

from twisted.internet.task import Clock

from webapp_bridge.server.accesslog import FLUSH_INTERVAL, AccessLog

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z POST /events 202 key=shop 1\.5ms$")


def test_lines_are_appended_every_interval_and_on_close(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text("earlier line\n")
    clock = Clock()
    log = AccessLog(str(path), clock)
    log.request("POST", "/events", 202, "shop", 1.46)
    assert path.read_text() == "earlier line\n", "not yet: lines wait for the next flush"
    clock.advance(FLUSH_INTERVAL)
    lines = path.read_text().splitlines()
    assert lines[0] == "earlier line" and LINE.match(lines[1]), lines
    log.request("GET", "/catalog", 401, "-", 0.2)
    log.close()
    assert path.read_text().splitlines()[2].endswith(" GET /catalog 401 key=- 0.2ms")


def test_two_writers_never_split_each_others_lines(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    clock = Clock()
    first, second = AccessLog(str(path), clock), AccessLog(str(path), clock)
    for i in range(500):
        first.request("POST", f"/events/{i}", 202, "a", 1.0)
        second.request("POST", f"/events/{i}", 202, "b", 1.0)
        if i % 100 == 0:
            clock.advance(FLUSH_INTERVAL)
    first.close()
    second.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 1000 and all(line.endswith(("key=a 1.0ms", "key=b 1.0ms")) for line in lines)


def test_a_path_cannot_forge_a_line_or_a_column(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), Clock())
    log.request("GET", "/x\n2026-01-01T00:00:00.000Z POST /events 202 key=admin 1.0ms\x1b[31m", 404, "-", 0.1)
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and "%0A" in lines[0] and "%1B" in lines[0] and "%20" in lines[0]
    assert lines[0].endswith(" 404 key=- 0.1ms")


def test_a_failing_disk_drops_lines_instead_of_keeping_them(tmp_path: Path) -> None:
    log = AccessLog(str(tmp_path / "access.log"), Clock())
    import os

    os.close(log._fd)
    log._fd = os.open("/dev/full", os.O_WRONLY)
    log.request("GET", "/", 200, "-", 0.1)
    log.flush()
    assert log._lines == [] and log._failing
    log.close()
