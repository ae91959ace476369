"""ForkedChild: a function run in a forked child, its result collected without blocking."""

from __future__ import annotations

import atexit
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from stream.forked_child import ForkedChild
from tests.helpers.processes import ROOT, wait_until


def reaped(pid: int) -> bool:
    """True once ``pid`` is no child of ours any more (no zombie left to reap)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def wait_readable(fd: int) -> None:
    """Block until ``fd`` can be read, at most 30 s (the test fails if the parent never writes)."""
    if not select.select([fd], [], [], 30)[0]:
        raise TimeoutError("the parent never released this child")


def test_the_child_reports_what_its_work_returns_and_is_reaped():
    child = ForkedChild.start(lambda: b"hello from %d" % os.getpid())
    result = child.wait()
    assert result.report == b"hello from %d" % child.pid
    assert result.crash is None and result.status == "exit code 0"
    assert reaped(child.pid)
    assert child.poll() is result


def test_the_child_works_on_the_memory_as_it_was_at_the_fork():
    state = {"events": [1, 2, 3]}
    release_r, release_w = os.pipe()

    def work() -> bytes:
        wait_readable(release_r)
        return repr(state["events"]).encode()

    child = ForkedChild.start(work)
    state["events"].append(4)  # the parent learns on
    os.write(release_w, b"x")
    assert child.wait().report == b"[1, 2, 3]"
    assert state["events"] == [1, 2, 3, 4]


def test_polling_never_blocks_and_a_report_larger_than_the_pipe_arrives_whole():
    release_r, release_w = os.pipe()
    big = os.urandom(3 << 20)

    def work() -> bytes:
        wait_readable(release_r)
        return big

    child = ForkedChild.start(work)
    assert child.poll() is None  # the child waits for us: a blocking poll would hang here
    os.write(release_w, b"x")
    while (result := child.poll()) is None:
        time.sleep(0.001)
    assert result.report == big


def test_an_exception_in_the_work_comes_back_as_a_traceback():
    def work() -> bytes:
        raise ValueError("cannot pickle this")

    result = ForkedChild.start(work).wait()
    assert result.report is None
    assert "ValueError: cannot pickle this" in result.crash
    assert result.status == "exit code 0"


def test_a_killed_child_reports_nothing_and_is_reaped():
    release_r, _release_w = os.pipe()

    def work() -> bytes:
        wait_readable(release_r)
        return b"never"

    child = ForkedChild.start(work)
    os.kill(child.pid, signal.SIGKILL)
    result = child.wait()
    assert (result.report, result.crash, result.status) == (None, None, "killed by SIGKILL")
    assert reaped(child.pid)


def test_wait_kills_a_child_that_outlives_its_timeout():
    release_r, _release_w = os.pipe()

    def work() -> bytes:
        wait_readable(release_r)
        return b"never"

    result = ForkedChild.start(work).wait(timeout=0.05)
    assert result.status == "killed by SIGKILL"


def test_the_child_runs_no_atexit_handler_of_the_parent(tmp_path: Path):
    marker = tmp_path / "atexit-ran"

    def handler() -> None:
        if os.getpid() != parent:
            marker.write_text("child")

    parent = os.getpid()
    atexit.register(handler)
    try:
        assert ForkedChild.start(lambda: b"done").wait().report == b"done"
    finally:
        atexit.unregister(handler)
    assert not marker.exists()


def test_the_child_dies_with_a_sigkilled_parent(tmp_path: Path):
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, select, signal, sys\n"
        "from stream.forked_child import ForkedChild\n"
        "r, w = os.pipe()\n"
        "child = ForkedChild.start(lambda: select.select([r], [], [], 60) and b'late')\n"
        "print(child.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == -signal.SIGKILL, out.stderr
    stat = Path(f"/proc/{int(out.stdout)}/stat")
    wait_until(
        lambda: not stat.exists() or stat.read_text().split(") ")[1].startswith("Z"),
        timeout=30,
        what="the orphaned child to die",
    )
